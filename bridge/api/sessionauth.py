"""``/sessionauth/v1``: Symphony's Authenticator API.

``authenticate`` reads the client certificate of the TLS connection (the ``api.tls``
listener) and answers a session token: an RS256 JWT signed with the bridge's own current key
(``sub``: the network user's UUID, ``uid``: their numeric id, ``bridge_session``: the
session), accepted in the ``sessionToken`` header of every ``/pod`` route and as a Bearer token
elsewhere, until it expires (``api.tls.session_ttl``) or is logged out. The pod certificate
verifies it.
"""

from __future__ import annotations

from typing import Any

import jwt
from aiohttp import web
from msgspec import Struct

from ..errors import BadRequest, Unauthorized, Unavailable
from ..ids import parse_uuid
from .auth import ADMIN_ROLE, SESSION_CLAIM, SYMPHONY_HEADER
from .client_tls import peer_certificate
from .context import ApiContext
from .operations import Answer, NoBody, Operation, Reply
from .queries import PublicQuery
from .symphony_shapes import PodCertificate as PodCertificateBody
from .symphony_shapes import Token

PREFIX = "/sessionauth"
DEFAULT_TTL = 3600


class LogoutResponse(Struct):
    """The Authenticator's ``SuccessResponse``."""

    message: str


class SessionAuthApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx
        tls = ctx.config.api.tls
        self._ttl = tls.session_ttl if tls is not None else DEFAULT_TTL

    def operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation("post", "/v1/authenticate", "symphonyAuthenticate",
                      "Symphony: a session token for the client certificate presented over TLS",
                      self.authenticate, PublicQuery, NoBody, Answer(Token), errors=(401, 403, 503),
                      tags=("sessionauth",)),
            Operation("get", "/v1/app/pod/certificate", "symphonyAuthenticatorPodCertificate",
                      "Symphony: the certificate verifying the session tokens",
                      self.pod_certificate, PublicQuery, NoBody, Answer(PodCertificateBody),
                      errors=(503,), tags=("sessionauth",)),
            Operation("post", "/v1/logout", "symphonyLogout",
                      "Symphony: end the session of the sessionToken header",
                      self.logout, PublicQuery, NoBody, Answer(LogoutResponse), errors=(401,),
                      tags=("sessionauth",)),
        ]  # fmt: skip

    async def authenticate(self, request: web.Request, _: PublicQuery, __: NoBody) -> Reply:
        der = peer_certificate(request)
        if der is None:
            raise Unauthorized(
                "no client certificate: call this over the bridge's TLS listener (api.tls) "
                "presenting one"
            )
        keys = self._ctx.signing_key
        if keys is None:
            raise Unavailable("the bridge has no signing key to issue session tokens")
        done = await self._ctx.cert_auth.authenticate(der, self._ttl)
        user, session = done.user, done.session
        material = keys.current()
        claims: dict[str, Any] = {
            "sub": str(user.id),
            "uid": user.number,
            SESSION_CLAIM: str(session.id),
            "iat": int(session.expires_at.timestamp()) - self._ttl,
            "exp": int(session.expires_at.timestamp()),
        }
        jwt_config = self._ctx.config.api.jwt
        if jwt_config.issuer is not None:
            claims["iss"] = jwt_config.issuer
        if jwt_config.audience is not None:
            claims["aud"] = jwt_config.audience
        if str(user.id) in self._ctx.config.credentials.admin_accounts:
            claims["roles"] = [ADMIN_ROLE]
        token = jwt.encode(
            claims, material.private_key, algorithm="RS256", headers={"kid": material.kid}
        )
        return Reply(Token(name=SYMPHONY_HEADER, token=token))

    async def pod_certificate(self, request: web.Request, _: PublicQuery, __: NoBody) -> Reply:
        pod_cert = self._ctx.pod_cert
        if pod_cert is None:
            raise Unavailable("the bridge has no signing key (api.jwt.key_dir or private_key_file)")
        return Reply(PodCertificateBody(pod_cert.pem()))

    async def logout(self, request: web.Request, _: PublicQuery, __: NoBody) -> Reply:
        token = request.headers.get(SYMPHONY_HEADER)
        if not token:
            raise Unauthorized("no session token (sessionToken header)")
        claims = self._ctx.verifier.verify(token)
        if SESSION_CLAIM not in claims:
            raise BadRequest("not a session token of certificate authentication")
        await self._ctx.cert_auth.logout(parse_uuid(claims[SESSION_CLAIM], SESSION_CLAIM))
        return Reply(LogoutResponse("Logged out."))
