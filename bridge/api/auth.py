"""JWT authentication of the REST API.

Tokens are verified with the one configured algorithm: RS256 against a PEM public key, a JWKS
(key picked by the token's ``kid``) or the public half of the bridge's own private key; or
HS256 with the shared secret. ``jwt.decode`` is always given that single algorithm, so ``alg:
none`` and algorithm confusion (an HS256 token "signed" with the RSA public key) fail. ``exp``
and ``sub`` are required; ``iss`` and ``aud`` are checked when configured.

The token is looked for, first found wins, in: the ``access_token`` query parameter, an
``Authorization: Bearer`` header, the header named ``api.token_name``, the cookie named
``api.token_name`` and, on the Symphony routes, the ``sessionToken`` header.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..bearer import bearer_token
from ..config import MIN_HS256_SECRET_BYTES as MIN_SECRET_BYTES
from ..config import ConfigError, JwtConfig
from ..errors import BridgeError, Forbidden, Unauthorized
from ..http_errors import Check
from ..ids import parse_uuid
from .context import Principal, set_principal
from .credential_auth import (
    api_key_principal,
    basic_principal,
    issued_to_credential,
    looks_like_jwt,
)
from .keys import KeyFile, KeyFileError, SigningKey, parse_jwks, parse_public_key, thumbprint
from .signing_keys import SigningKeys

if TYPE_CHECKING:
    from .context import ApiContext

log = logging.getLogger(__name__)

ADMIN_ROLE = "admin"
#: HS256 tokens remembered as verified at most (the memory starts over when full).
MAX_VERIFIED = 10_000
QUERY_TOKEN = "access_token"  # noqa: S105 (a parameter name)
SYMPHONY_HEADER = "sessionToken"


def _config_error(key: str, exc: Exception) -> ConfigError:
    return ConfigError(f"api.jwt.{key}", str(exc))


def _public_with_kid(data: bytes) -> tuple[RSAPublicKey, str]:
    key = parse_public_key(data)
    return key, thumbprint(key)


class TokenVerifier:
    """Verifies the REST API's JWTs against the configured key material."""

    def __init__(
        self, config: JwtConfig, signing_key: SigningKeys | SigningKey | None = None
    ) -> None:
        self.algorithm = config.algorithm
        self._config = config
        self._secret: bytes | None = None
        self._jwks: KeyFile[dict[str, RSAPublicKey]] | None = None
        self._public: KeyFile[tuple[RSAPublicKey, str]] | None = None
        # The bridge's own keys verify what it issued (client-credentials tokens) whatever the
        # algorithm configured for other issuers' tokens.
        self._signing = signing_key
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}
        if config.algorithm == "HS256":
            if config.secret:
                self._secret = config.secret.encode()
                if len(self._secret) < MIN_SECRET_BYTES:
                    log.warning("api.jwt.secret is shorter than %d bytes", MIN_SECRET_BYTES)
            else:
                log.warning("api.jwt.secret is not set: the REST API will refuse every token")
            return
        try:
            if config.jwks_file is not None:
                self._jwks = KeyFile(config.jwks_file, parse_jwks)
        except KeyFileError as exc:
            raise _config_error("jwks_file", exc) from None
        try:
            if config.public_key_file is not None:
                self._public = KeyFile(config.public_key_file, _public_with_kid)
        except KeyFileError as exc:
            raise _config_error("public_key_file", exc) from None
        if self._jwks is None and self._public is None and self._signing is None:
            raise ConfigError(
                "api.jwt.public_key_file",
                "RS256 needs public_key_file, jwks_file or private_key_file",
            )

    @property
    def configured(self) -> bool:
        return self.algorithm == "RS256" or self._secret is not None

    def _rsa_key(self, kid: object) -> RSAPublicKey:
        keys: dict[str, RSAPublicKey] = {}
        if self._signing is not None:
            keys.update(self._signing.trusted())
        if self._public is not None:
            public, public_kid = self._public.get()
            keys[public_kid] = public
        if self._jwks is not None:
            keys.update(self._jwks.get())
        if isinstance(kid, str) and kid in keys:
            return keys[kid]
        if self._public is not None:  # a single configured key needs no kid
            return self._public.get()[0]
        if len(keys) == 1 and (kid is None or self._jwks is None):
            return next(iter(keys.values()))
        if kid is None:
            raise Unauthorized("token has no kid and the key set holds several keys")
        raise Unauthorized("token signed with an unknown key (kid)")

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or 401 saying what is wrong with it.

        With HS256 (one secret for the process's life) a token verified once is remembered
        until it expires (``exp`` plus the leeway, as PyJWT judges it): a client's next
        requests skip the parsing and the HMAC. RS256 tokens are verified every time (their
        keys can change on disk).
        """
        if self._secret is None:
            return self._verify(token)
        known = self._verified.get(token)
        if known is not None:
            claims, valid_until = known
            if time.time() <= valid_until:
                return dict(claims)
            del self._verified[token]
        claims = self._verify(token)
        exp = claims.get("exp")
        # Only what the secret signed: the bridge's own RS256 keys (its issued tokens) rotate.
        hs256 = jwt.get_unverified_header(token).get("alg") == "HS256"
        if hs256 and isinstance(exp, int | float) and not isinstance(exp, bool):
            if len(self._verified) >= MAX_VERIFIED:
                self._verified.clear()
            self._verified[token] = (dict(claims), float(exp) + self._config.leeway)
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        if not self.configured:
            raise Unauthorized("token verification is not configured (api.jwt)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        own = self._signing.trusted() if self._signing is not None else {}
        algorithm = self.algorithm
        key: Any
        if alg == "RS256" and isinstance(kid, str) and kid in own:
            key, algorithm = own[kid], "RS256"
        elif not self.configured:
            raise Unauthorized("token verification is not configured (api.jwt)")
        elif alg != self.algorithm:
            raise Unauthorized(f"token algorithm {alg!r} is not accepted, only {self.algorithm}")
        else:
            key = self._secret if self.algorithm == "HS256" else self._rsa_key(kid)
        config = self._config
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": ["exp", "sub"], "verify_aud": config.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the {exc.claim} claim") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("token not valid yet") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("token signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None


def _token_and_location(
    request: web.Request, token_name: str, *, symphony: bool = False
) -> tuple[str | None, str | None]:
    token = request.query.get(QUERY_TOKEN)
    if token:
        return token, "query"
    bearer = bearer_token(request)
    if bearer is not None:
        return bearer, "bearer"
    if header := request.headers.get(token_name):
        return header, "header"
    if cookie := request.cookies.get(token_name):
        return cookie, "cookie"
    if symphony and (session := request.headers.get(SYMPHONY_HEADER)):
        return session, "header"
    return None, None


def find_token(request: web.Request, token_name: str, *, symphony: bool = False) -> str | None:
    """The request's token from the first location that has one."""
    return _token_and_location(request, token_name, symphony=symphony)[0]


def token_location(request: web.Request, token_name: str, *, symphony: bool = False) -> str | None:
    """Where :func:`find_token` finds the token: query, bearer, header or cookie (or None)."""
    return _token_and_location(request, token_name, symphony=symphony)[1]


def is_admin(claims: dict[str, Any]) -> bool:
    roles = claims.get("roles")
    if isinstance(roles, list) and ADMIN_ROLE in roles:
        return True
    return claims.get("role") == ADMIN_ROLE


def _subject(claims: dict[str, Any]) -> uuid.UUID:
    try:
        return parse_uuid(claims.get("sub"), "sub")
    except BridgeError:
        raise Unauthorized("token subject (sub) must be a network user id (UUID)") from None


def _name(claims: dict[str, Any]) -> str | None:
    name = claims.get("name")
    return name if isinstance(name, str) and name.strip() else None


def _session(claims: dict[str, Any]) -> str | None:
    for claim in ("sid", "jti"):
        value = claims.get(claim)
        if isinstance(value, str) and 0 < len(value) <= 255:
            return value
    return None


async def resolve_principal(
    ctx: ApiContext, claims: dict[str, Any], as_user: str | None, token: str = ""
) -> Principal:
    """The token's user (created on first use, renamed when ``name`` changes) and who it acts as."""
    subject = _subject(claims)
    admin = is_admin(claims)
    acting = subject
    if as_user is not None:
        if not admin:
            raise Forbidden("only administrators may act for another user (asUserId)")
        acting = parse_uuid(as_user, "asUserId")
    name = _name(claims)
    await ctx.services.users.sign_in(subject, name, acting=acting)
    return Principal(subject, acting, admin, session_id=_session(claims), name=name, token=token)


#: The claim naming a certificate-authentication session (a name of the bridge's own, so the
#: ``sid`` of other issuers' tokens is not taken for one).
SESSION_CLAIM = "bridge_session"


async def _check_session(ctx: ApiContext, claims: dict[str, Any]) -> None:
    """A session token (certificate authentication's) must not be logged out."""
    sid = claims.get(SESSION_CLAIM)
    if sid is None:
        return
    try:
        session_id = parse_uuid(sid, SESSION_CLAIM)
    except BridgeError:
        raise Unauthorized("invalid session") from None
    if not await ctx.cert_auth.is_live(session_id):
        raise Unauthorized("invalid session: logged out or expired")


def authenticator(
    ctx: ApiContext, *, symphony: bool = False, public: Collection[object] = ()
) -> Check:
    """The token check of a sub-application, a check run by its error middleware after the
    request guard, for requests that matched a route; those served by the ``public``
    handlers pass unauthenticated."""
    token_name = ctx.config.api.token_name

    async def authenticate(request: web.Request) -> web.Request:
        if request.match_info.handler in public:
            return request
        as_user = request.query.get("asUserId")
        scheme, _, basic = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            set_principal(request, await basic_principal(ctx, basic.strip(), as_user))
            return request
        token = find_token(request, token_name, symphony=symphony)
        if token is None:
            raise Unauthorized("No login found: no access token")
        if not looks_like_jwt(token):
            set_principal(request, await api_key_principal(ctx, token, as_user))
            return request
        claims = ctx.verifier.verify(token)
        await _check_session(ctx, claims)
        principal = await resolve_principal(ctx, claims, as_user, token)
        set_principal(request, await issued_to_credential(ctx, claims, principal))
        return request

    return authenticate
