"""``POST /auth-api/token``: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).

The client authenticates with an ``oauth_client`` credential: HTTP Basic (``client_id`` and
``client_secret`` form-encoded, RFC 6749 §2.3.1) or the same two in the form body, not both. The
answer is ``{"access_token", "token_type": "Bearer", "expires_in"}``, the token an RS256 JWT the
bridge signs for the credential's account (``sub``), naming the credential (``cid``) so it stops
working when the credential is deleted or expires. Errors are RFC 6749 §5.2 bodies
(``{"error", "error_description"}``), never the REST API's.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Literal
from urllib.parse import unquote_plus

import jwt
from aiohttp import web
from msgspec import Struct

from ..errors import BridgeError, Unauthorized
from .context import ApiContext
from .credential_auth import CREDENTIAL_CLAIM, decode_basic
from .operations import Answer, NoBody, Operation, Reply

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(BridgeError):
    """An RFC 6749 §5.2 error: ``code`` is its ``error`` member."""

    def __init__(self, code: str, description: str, *, status: int = 400) -> None:
        super().__init__(description, status=status)
        self.code = code


class TokenQuery(Struct, forbid_unknown_fields=True):
    """The token endpoint takes its parameters in the form body only."""


class TokenForm(Struct):
    """The form body (other parameters are ignored, as RFC 6749 §3.2 requires)."""

    grant_type: Literal["client_credentials"]
    client_id: str | None = None
    client_secret: str | None = None
    #: Accepted and ignored (RFC 6749 §3.3): a token grants what its account may do.
    scope: str | None = None


class TokenResponse(Struct):
    access_token: str
    token_type: str
    expires_in: int


class TokenError(Struct):
    """An RFC 6749 §5.2 error body."""

    error: str
    error_description: str


class TokenApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation(
                "post",
                "/token",
                "token",
                "OAuth 2.0 client-credentials grant (RFC 6749 §4.4) for oauth_client credentials",
                self.token,
                TokenQuery,
                NoBody,
                Answer(TokenResponse, also=()),
                errors=(401, 503),
                raw_body=(FORM, TokenForm),
                error_body=("application/json", TokenError),
            )
        ]

    async def token(self, request: web.Request, _: TokenQuery, __: NoBody) -> Reply:
        try:
            return await self._token(request)
        except OAuthError as exc:
            headers = dict(_NO_STORE)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="bridge"'
            return Reply(TokenError(exc.code, exc.message), status=exc.status, headers=headers)

    async def _client(self, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        in_form = "client_id" in form or "client_secret" in form
        if scheme.lower() == "basic":
            if in_form:
                raise OAuthError("invalid_request", "authenticate the client one way only")
            try:
                client_id, client_secret = decode_basic(value.strip())
            except Unauthorized:
                raise OAuthError(
                    "invalid_client", "malformed Basic credentials", status=401
                ) from None
            return unquote_plus(client_id), unquote_plus(client_secret)
        if scheme:
            raise OAuthError(
                "invalid_client", f"{scheme} is not a client authentication", status=401
            )
        if "client_id" not in form or "client_secret" not in form:
            raise OAuthError(
                "invalid_client", "client authentication is required (Basic or form)", status=401
            )
        return form["client_id"], form["client_secret"]

    async def _form(self, request: web.Request) -> dict[str, str]:
        if request.content_type != FORM:
            raise OAuthError("invalid_request", f"the body must be {FORM}")
        posted = await request.post()
        form: dict[str, str] = {}
        for name in set(posted.keys()):
            values = posted.getall(name)
            if len(values) > 1:
                raise OAuthError("invalid_request", f"{name} is given more than once")
            if not isinstance(values[0], str):
                raise OAuthError("invalid_request", f"{name} must be a form field")
            form[name] = values[0]
        return form  # other parameters are ignored, as RFC 6749 §3.2 requires

    async def _token(self, request: web.Request) -> Reply:
        form = await self._form(request)
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type", f"{grant} is not supported; use client_credentials"
            )
        client_id, client_secret = await self._client(request, form)
        auth = self._ctx.services.credential_auth
        signing = self._ctx.signing_key
        if auth is None or signing is None:
            raise OAuthError("temporarily_unavailable", "this bridge issues no tokens", status=503)
        try:
            credential = await auth.client(client_id, client_secret)
        except Unauthorized as exc:
            raise OAuthError("invalid_client", exc.message, status=401) from None
        ttl = self._ctx.config.credentials.token_ttl
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(credential.owner_id),
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            CREDENTIAL_CLAIM: str(credential.id),
        }
        settings = self._ctx.config.api.jwt
        if settings.issuer:
            claims["iss"] = settings.issuer
        if settings.audience:
            claims["aud"] = settings.audience
        if auth.is_admin(credential.owner_id):
            claims["roles"] = ["admin"]
        key = signing.current()
        token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
        log.info("Issued a token to client credential %s", credential.id)
        return Reply(TokenResponse(token, "Bearer", ttl), headers=_NO_STORE)
