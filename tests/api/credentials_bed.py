"""A test bed for credentials: the whole REST API with credentials on (a key file, the bridge's
own signing key), users made on demand, and calls that return status, headers and body."""

from __future__ import annotations

import base64
import json as jsonlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.api import ApiServices, RedactingAccessLogger, mount_api
from bridge.api.signing_keys import ensure_signing_key
from bridge.config import Config, parse_config
from bridge.credentials.crypto import create_key_file
from bridge.credentials.setup import Credentials, build_credentials
from bridge.db.database import Database
from tests.api.conftest import SECRET, TOKEN_NAME, hs_token
from tests.conftest import config_data

ADMIN_ACCOUNT = uuid.UUID("00000000-0000-4000-8000-00000000ad01")
BASE = "/v1/credentials"


def bed_config(tmp_path: Path, **credentials: Any) -> Config:
    return parse_config(
        config_data(
            api={
                "token_name": TOKEN_NAME,
                "jwt": {"algorithm": "HS256", "secret": SECRET, "key_dir": str(tmp_path / "keys")},
            },
            credentials={
                "key_file": str(tmp_path / "credentials.key"),
                "admin_accounts": [str(ADMIN_ACCOUNT)],
                **credentials,
            },
        )
    )


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any

    @property
    def result(self) -> Any:
        assert self.status in (200, 201), (self.status, self.body)
        return self.body["result"]


@dataclass
class Bed:
    client: TestClient[Any, Any]
    db: Database
    services: ApiServices
    credentials: Credentials
    config: Config
    tmp_path: Path

    async def person(self, name: str = "Someone", user_id: uuid.UUID | None = None) -> uuid.UUID:
        async with self.db.transaction() as conn:
            return (await self.services.users.create(conn, name, user_id=user_id)).id

    async def call(
        self,
        method: str,
        path: str,
        user: uuid.UUID | None = None,
        *,
        admin: bool = False,
        auth: str | None = None,
        json: Any = None,
        params: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if user is not None:
            token = hs_token(user, **({"roles": ["admin"]} if admin else {}))
            all_headers["Authorization"] = f"Bearer {token}"
        if auth is not None:
            all_headers["Authorization"] = auth
        resp = await self.client.request(
            method, path, json=json, params=params, data=data, headers=all_headers
        )
        text = await resp.text()
        return Reply(resp.status, resp.headers, jsonlib.loads(text) if text else None)

    async def create(
        self,
        owner: uuid.UUID,
        config: dict[str, Any],
        *,
        as_user: uuid.UUID | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        reply = await self.call(
            "POST", f"{BASE}/{owner}", as_user or owner, json={"config": config, **fields}
        )
        assert reply.status == 201, reply.body
        result: dict[str, Any] = reply.body["result"]
        return result

    async def api_key(self, owner: uuid.UUID, **fields: Any) -> tuple[str, str]:
        """A new token credential's id and (generated) secret."""
        result = await self.create(owner, {"type": "token"}, **fields)
        return result["id"], result["config"]["secret"]


async def make_bed(
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
    tmp_path: Path,
    config: Config | None = None,
    *,
    with_key: bool = True,
) -> Bed:
    config = config or bed_config(tmp_path)
    assert config.credentials.key_file is not None and config.api.jwt.key_dir is not None
    if with_key:
        create_key_file(config.credentials.key_file)
    ensure_signing_key(config.api.jwt.key_dir)
    credentials = build_credentials(config, db, services.users, environ={})
    full = ApiServices(
        users=services.users,
        messaging=services.messaging,
        networking=services.networking,
        notifications=services.notifications,
        credentials=credentials.service,
        credential_auth=credentials.auth,
    )
    app = web.Application()
    mount_api(app, config, db, full)
    # The access log the bridge runs with (it masks an access_token in the query).
    server = TestServer(app)
    await server.start_server(access_log_class=RedactingAccessLogger)
    client = await aiohttp_client(server)
    bed = Bed(client, db, full, credentials, config, tmp_path)
    await bed.person("Admin", ADMIN_ACCOUNT)
    return bed
