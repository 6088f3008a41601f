"""``GET /auth-api/publickey``: the bridge's token-signing public key, as the reference's auth
service serves it (``{"keyId", "keyData"}``), plus the same key as a JWK.

Served only when the bridge signs tokens itself (RS256 with ``api.jwt.private_key_file``);
404 otherwise, and for a ``keyId`` that is not the current key's.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import NotFound
from .context import ApiContext
from .envelope import json_response
from .keys import public_jwk, public_pem
from .paging import single


class PublicKeyApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/publickey", self.public_key, allow_head=False)]

    async def public_key(self, request: web.Request) -> web.Response:
        signing = self._ctx.signing_key
        if signing is None or self._ctx.config.api.jwt.algorithm != "RS256":
            raise NotFound("this bridge does not sign tokens (no RS256 private key)")
        current = signing.current()
        wanted = single(request.query, "keyId")
        if wanted is not None and wanted != current.kid:
            raise NotFound(f"no public key {wanted}")
        jwk = public_jwk(current.public_key) | {"kid": current.kid, "alg": "RS256", "use": "sig"}
        return json_response(
            {"keyId": current.kid, "keyData": public_pem(current.public_key), "jwk": jwk}
        )
