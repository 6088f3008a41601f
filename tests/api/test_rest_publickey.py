"""GET /auth-api/publickey and the OpenAPI document."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from aiohttp.web_urldispatcher import PrefixedSubAppResource

from bridge.api import ApiServices
from bridge.api.app import api_apps
from bridge.api.keys import thumbprint
from bridge.api.openapi import build_openapi
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


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for resource in app.router.resources():
        assert isinstance(resource, PrefixedSubAppResource)
        for route in resource._app.router.routes():
            assert route.resource is not None
            found.add((route.method.lower(), route.resource.canonical))
    return found


def test_openapi_documents_every_route(db: Database, services: ApiServices) -> None:
    app = web.Application()
    for prefix, sub_app in api_apps(api_config(), db, services):
        app.add_subapp(prefix, sub_app)
    served = routes_of(app)
    document = build_openapi("token", "1")
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented
    assert len(served) >= 30
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"], (method, path)
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == set(part[1:-1] for part in path.split("/") if part.startswith("{"))


async def test_openapi_is_served_without_a_token(api: Api) -> None:
    resp = await api.client.get("/openapi.json")
    assert resp.status == 200
    document = await resp.json()
    assert document["openapi"].startswith("3.0")
    assert "/messaging-api/v1/messages" in document["paths"]
    assert (
        document["components"]["securitySchemes"]["headerToken"]["name"] == "linkedin-access-token"
    )
