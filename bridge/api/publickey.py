"""``GET /auth-api/publickey``: the bridge's token-signing public keys, as the seed's auth
service serves them (``{"keyId", "keyData"}``, plus the same key as a JWK); ``keyId`` picks any
key the bridge still trusts, the signing key otherwise. ``GET /.well-known/jwks.json`` serves
them all as a JWKS.

404 when the bridge has no signing key, and for a ``keyId`` it does not trust.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..errors import NotFound
from .context import ApiContext
from .envelope import json_response
from .keys import public_jwk, public_pem
from .paging import single


def _jwk(kid: str, key: RSAPublicKey) -> dict[str, Any]:
    return public_jwk(key) | {"kid": kid, "alg": "RS256", "use": "sig"}


class PublicKeyApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/publickey", self.public_key, allow_head=False)]

    def jwks_routes(self) -> list[web.RouteDef]:
        return [web.get("/jwks.json", self.jwks, allow_head=False)]

    async def public_key(self, request: web.Request) -> web.Response:
        signing = self._ctx.signing_key
        if signing is None:
            raise NotFound("this bridge does not sign tokens (no RS256 private key)")
        wanted = single(request.query, "keyId")
        kid = signing.current().kid if wanted is None else wanted
        key = signing.trusted().get(kid)
        if key is None:
            raise NotFound(f"no public key {wanted}")
        return json_response({"keyId": kid, "keyData": public_pem(key), "jwk": _jwk(kid, key)})

    async def jwks(self, _: web.Request) -> web.Response:
        signing = self._ctx.signing_key
        keys = signing.trusted() if signing is not None else {}
        response = json_response({"keys": [_jwk(kid, key) for kid, key in keys.items()]})
        response.headers["Cache-Control"] = "public, max-age=300"
        return response
