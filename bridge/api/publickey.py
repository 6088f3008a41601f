"""``GET /auth-api/publickey``: the bridge's token-signing public keys, as the reference's auth
service serves them (``{"keyId", "keyData"}``, plus the same key as a JWK); ``keyId`` picks any
key the bridge still trusts, the signing key otherwise. ``GET /.well-known/jwks.json`` serves
them all as a JWKS.

404 when the bridge has no signing key, and for a ``keyId`` it does not trust.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from msgspec import UNSET, Struct

from ..errors import NotFound
from .context import ApiContext
from .keys import public_jwk, public_pem
from .operations import Answer, NoBody, Operation, Reply
from .queries import PublicKeyQuery, PublicQuery
from .resources import PublicKey


class Jwks(Struct):
    """A JSON Web Key Set (RFC 7517)."""

    keys: list[dict[str, str]]


def _jwk(kid: str, key: RSAPublicKey) -> dict[str, str]:
    jwk: dict[str, str] = public_jwk(key) | {"kid": kid, "alg": "RS256", "use": "sig"}
    return jwk


class PublicKeyApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation(
                "get",
                "/publickey",
                "publicKey",
                "A token-signing public key of the bridge (404 unless it signs tokens)",
                self.public_key,
                PublicKeyQuery,
                NoBody,
                Answer(PublicKey),
                errors=(404,),
            )
        ]

    def jwks_operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation(
                "get",
                "/jwks.json",
                "jwks",
                "Every token-signing key the bridge trusts, as a JWKS",
                self.jwks,
                PublicQuery,
                NoBody,
                Answer(Jwks),
            )
        ]

    async def public_key(self, request: web.Request, query: PublicKeyQuery, _: NoBody) -> Reply:
        signing = self._ctx.signing_key
        if signing is None:
            raise NotFound("this bridge does not sign tokens (no RS256 private key)")
        kid = signing.current().kid if query.keyId is UNSET else query.keyId
        key = signing.trusted().get(kid)
        if key is None:
            raise NotFound(f"no public key {kid}")
        return Reply(PublicKey(kid, public_pem(key), _jwk(kid, key)))

    async def jwks(self, request: web.Request, _: PublicQuery, __: NoBody) -> Reply:
        signing = self._ctx.signing_key
        keys = signing.trusted() if signing is not None else {}
        return Reply(
            Jwks([_jwk(kid, key) for kid, key in keys.items()]),
            headers={"Cache-Control": "public, max-age=300"},
        )
