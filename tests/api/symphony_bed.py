"""The API served over real TLS with client certificates requested (``api.tls``), a throwaway
server CA, the bridge's own signing key, and helpers for company certificates."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.api import ApiServices, mount_api
from bridge.api.app import CLIENT_TLS
from bridge.config import Config, parse_config
from bridge.db.database import Database
from bridge.own_key import create_private_key_file
from tests.api.conftest import SECRET, TOKEN_NAME, hs_token
from tests.api.x509_kit import Issued, issue
from tests.conftest import config_data

CERTS = "/pod/v1/companycert"
CREATE = "/pod/v2/companycert/create"
AUTHENTICATE = "/sessionauth/v1/authenticate"
LOGOUT = "/sessionauth/v1/logout"


def pod_config(tmp_path: Path, server: Issued, **tls: Any) -> Config:
    cert, key = server.files(tmp_path, "server")
    signing = tmp_path / "signing.pem"
    if not signing.exists():
        create_private_key_file(signing)
    settings = {"algorithm": "HS256", "secret": SECRET, "private_key_file": str(signing)}
    tls_settings = {"certificate": str(cert), "key": str(key), "port": 8443} | tls
    return parse_config(
        config_data(api={"token_name": TOKEN_NAME, "jwt": settings, "tls": tls_settings})
    )


@dataclass
class PodBed:
    server: TestServer
    db: Database
    services: ApiServices
    server_ca: Issued
    tmp: Path
    admin: uuid.UUID = field(default_factory=uuid.uuid4)
    _sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.port}{path}"

    def session(self, client: Issued | None = None, chain: list[Issued] = ()) -> Any:
        """An HTTPS session trusting the server, presenting ``client`` (and ``chain``)."""
        context = ssl.create_default_context(cadata=self.server_ca.pem)
        if client is not None:
            cert, key = client.files(self.tmp, uuid.uuid4().hex)
            if chain:
                cert.write_text(client.pem + "".join(c.pem for c in chain))
            context.load_cert_chain(cert, key)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        self._sessions.append(session)
        return session

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        user: uuid.UUID | None = None,
        admin: bool = False,
        client: Issued | None = None,
        **kw: Any,
    ) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if user is not None or admin:
            extra = {"roles": ["admin"]} if admin else {}
            token = hs_token(user or self.admin, **extra)
        if token is not None:
            headers["sessionToken"] = token
        async with self.session(client).request(
            method, self.url(path), headers=headers, **kw
        ) as resp:
            return resp.status, await resp.json()

    async def store(
        self, cert: Issued, type_: str, status: str, *, name: str | None = None
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {"type": {"type": type_}, "status": {"type": status}}
        if name is not None:
            attributes["name"] = name
        status_code, body = await self.call(
            "POST", CREATE, admin=True, json={"pem": cert.pem, "attributes": attributes}
        )
        assert status_code == 200, body
        return dict(body)

    async def set_status(self, cert: Issued, status: str) -> None:
        code, body = await self.call(
            "POST", f"{CERTS}/{cert.fingerprint}/update", admin=True,
            json={"status": {"type": status}},
        )  # fmt: skip
        assert code == 200, body

    async def authenticate(self, client: Issued | None) -> tuple[int, Any]:
        return await self.call("POST", AUTHENTICATE, client=client)

    async def user(self, name: str) -> tuple[uuid.UUID, int]:
        """A network user: (UUID, numeric id)."""
        async with self.db.transaction() as conn:
            made = await self.services.users.create(conn, name)
        return made.id, made.number

    async def number(self, user_id: uuid.UUID) -> int:
        async with self.db.acquire() as conn:
            return (await self.services.users.get(conn, user_id)).number

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()


async def make_pod_bed(
    aiohttp_server: Any, db: Database, services: ApiServices, tmp_path: Path
) -> PodBed:
    server_ca = issue("Test Server CA", ca=True)
    server_cert = issue("127.0.0.1", server_ca, ip="127.0.0.1")
    config = pod_config(tmp_path, server_cert)
    app = web.Application()
    mount_api(app, config, db, services)
    listener = app[CLIENT_TLS]
    await listener.refresh()
    server = await aiohttp_server(app, ssl=listener.tls.context)
    return PodBed(server, db, services, server_ca, tmp_path)
