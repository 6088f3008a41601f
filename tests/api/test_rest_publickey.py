"""GET /auth-api/publickey."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import jwt

from bridge.api import ApiServices
from bridge.api.keys import thumbprint
from bridge.cli_token import mint_token
from bridge.db.database import Database
from tests.api.conftest import Api, RsaKey, api_config, assert_error, serve, write


async def test_public_key_of_the_signing_key(
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
    tmp_path: Path,
    rsa_keys: tuple[RsaKey, RsaKey],
) -> None:
    key, _ = rsa_keys
    config = api_config(
        algorithm="RS256", private_key_file=str(write(tmp_path / "key.pem", key.private_pem))
    )
    client = await serve(aiohttp_client, config, db, services)
    resp = await client.get("/auth-api/publickey")
    assert resp.status == 200
    body = await resp.json()
    assert body["keyId"] == thumbprint(key.private.public_key())
    assert body["keyData"].startswith("-----BEGIN PUBLIC KEY-----")
    assert body["jwk"]["kid"] == body["keyId"] and body["jwk"]["kty"] == "RSA"
    # What it serves verifies what the bridge mints.
    token = mint_token(config, uuid.uuid4(), name="Ann")
    assert jwt.get_unverified_header(token)["kid"] == body["keyId"]
    claims = jwt.decode(token, body["keyData"], algorithms=["RS256"])
    assert claims["name"] == "Ann"
    resp = await client.get("/auth-api/publickey", params={"keyId": body["keyId"]})
    assert resp.status == 200
    resp = await client.get("/auth-api/publickey", params={"keyId": "other"})
    assert_error(resp.status, await resp.json(), 404, "other")


async def test_no_public_key_without_a_signing_key(api: Api) -> None:
    resp = await api.client.get("/auth-api/publickey")
    assert_error(resp.status, await resp.json(), 404, "does not sign")
