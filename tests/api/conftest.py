"""Fixtures for the REST API: a real Postgres per test, the API mounted on an aiohttp test
server, and tokens signed the ways the bridge accepts them."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.api import ApiServices, mount_api
from bridge.config import Config, parse_config
from bridge.db.database import Database
from bridge.services import build_services
from tests.conftest import config_data

SECRET = "a-shared-secret-of-at-least-32-bytes!"
TOKEN_NAME = "linkedin-access-token"


@dataclass(frozen=True)
class RsaKey:
    private: rsa.RSAPrivateKey
    private_pem: bytes
    public_pem: bytes


def _rsa_key() -> RsaKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return RsaKey(
        private,
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@pytest.fixture(scope="session")
def rsa_keys() -> tuple[RsaKey, RsaKey]:
    """Two RSA key pairs (generated once): a current key and another one."""
    return _rsa_key(), _rsa_key()


def api_config(**jwt: Any) -> Config:
    settings = {"algorithm": "HS256", "secret": SECRET} if not jwt else jwt
    return parse_config(config_data(api={"token_name": TOKEN_NAME, "jwt": settings}))


def claims(sub: uuid.UUID | str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": str(sub), "iat": now, "exp": now + 600} | extra


def hs_token(sub: uuid.UUID | str, *, secret: str = SECRET, **extra: Any) -> str:
    return jwt.encode(claims(sub, **extra), secret, algorithm="HS256")


def rs_token(sub: uuid.UUID | str, key: RsaKey, *, kid: str | None = None, **extra: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(sub, **extra), key.private, algorithm="RS256", headers=headers)


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn, min_size=1, max_size=5)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def services(db: Database) -> ApiServices:
    return build_services(db)


@dataclass
class Api:
    """An HTTP client of the mounted API, with helpers to make users and sign their tokens."""

    client: TestClient[Any, Any]
    db: Database
    services: ApiServices
    token_for: Callable[..., str] = field(default=hs_token)
    friends: list[uuid.UUID] = field(default_factory=list)

    async def person(self, name: str = "Someone") -> uuid.UUID:
        """A network user that exists before calling (as one created by an operator)."""
        return (await self.services.users.add(name)).id

    async def friend(self, name: str = "Someone") -> uuid.UUID:
        """A network user connected to every earlier friend of this test (who may then put
        each other in conversations)."""
        user_id = await self.person(name)
        for other in self.friends:
            await self.services.networking.connect(user_id, other)
        self.friends.append(user_id)
        return user_id

    async def call(
        self,
        method: str,
        path: str,
        user: uuid.UUID | None = None,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        admin: bool = False,
        data: str | None = None,
    ) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        if user is not None:
            extra = {"roles": ["admin"]} if admin else {}
            all_headers["Authorization"] = f"Bearer {self.token_for(user, **extra)}"
        resp = await self.client.request(
            method, path, json=json, params=params, headers=all_headers, data=data
        )
        return resp.status, await resp.json()


async def serve(
    aiohttp_client: Any, config: Config, db: Database, services: ApiServices
) -> TestClient[Any, Any]:
    app = web.Application()
    mount_api(app, config, db, services)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


@pytest.fixture
async def api(aiohttp_client: Any, db: Database, services: ApiServices) -> Api:
    """The API with HS256 tokens."""
    return Api(await serve(aiohttp_client, api_config(), db, services), db, services)


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def assert_error(status: int, body: Any, expected: int, fragment: str = "") -> None:
    """The seed's error body."""
    assert status == expected, body
    assert body["result"] == "ERR"
    assert body["status"] == expected and body["errCode"] == expected
    assert isinstance(body["date"], str) and body["date"].endswith("Z")
    assert isinstance(body["detail"], str) and body["detail"]
    assert fragment in body["message"], body["message"]
