"""``GET /auth-api/publickey``: the bridge's token-signing public key, as the reference's auth
service serves it (``{"keyId", "keyData"}``), plus the same key as a JWK.

Served only when the bridge signs tokens itself (RS256 with ``api.jwt.private_key_file``);
404 otherwise, and for a ``keyId`` that is not the current key's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from msgspec import UNSET

from ..errors import NotFound
from .context import ApiContext
from .keys import public_jwk, public_pem
from .operations import Answer, NoBody, Operation, Reply
from .queries import PublicKeyQuery
from .resources import PublicKey


class PublicKeyApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation(
                "get",
                "/publickey",
                "publicKey",
                "The bridge's token-signing public key (404 unless it signs tokens)",
                self.public_key,
                PublicKeyQuery,
                NoBody,
                Answer(PublicKey),
                errors=(404,),
            )
        ]

    async def public_key(self, request: web.Request, query: PublicKeyQuery, _: NoBody) -> Reply:
        signing = self._ctx.signing_key
        if signing is None or self._ctx.config.api.jwt.algorithm != "RS256":
            raise NotFound("this bridge does not sign tokens (no RS256 private key)")
        current = signing.current()
        if query.keyId is not UNSET and query.keyId != current.kid:
            raise NotFound(f"no public key {query.keyId}")
        jwk = public_jwk(current.public_key) | {"kid": current.kid, "alg": "RS256", "use": "sig"}
        return Reply(PublicKey(current.kid, public_pem(current.public_key), jwk))
