"""Shared fixtures: one embedded Postgres per test session, a fresh migrated database per test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bridge.config import Config, parse_config
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.schema import ensure_schema
from tests.pg_tcp import TcpPostgres

HS_TOKEN = "hs-secret-token"
AS_TOKEN = "as-secret-token"
TEMPLATE_DB = "bridge_template"
_counter = itertools.count()


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PostgresServer(Protocol):
    @property
    def dsn(self) -> str: ...


@pytest.fixture(scope="session")
def embedded_pg_server() -> Iterator[EmbeddedPostgres]:
    """A private Postgres for the whole session, started by the suite itself."""
    root = Path(tempfile.mkdtemp(prefix="bridge-tests-"))
    root.chmod(0o711)  # as root, Postgres runs as an unprivileged user that must reach it
    server = EmbeddedPostgres(root / "pg", database="postgres")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tcp_pg_server() -> Iterator[TcpPostgres]:
    """A second server, not embedded: reached over TCP on loopback with a password and TLS."""
    root = Path(tempfile.mkdtemp(prefix="bridge-tests-tcp-"))
    root.chmod(0o711)  # as root, Postgres runs as an unprivileged user that must reach it
    server = TcpPostgres(root / "pg")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's server: the embedded one, or with ``BRIDGE_TEST_POSTGRES=tcp`` the TCP
    one (the whole suite then runs over TCP with ``sslmode=require``)."""
    choice = os.environ.get("BRIDGE_TEST_POSTGRES", "embedded")
    if choice not in ("embedded", "tcp"):
        raise pytest.UsageError(f"BRIDGE_TEST_POSTGRES must be embedded or tcp, not {choice!r}")
    server: PostgresServer = request.getfixturevalue(f"{choice}_pg_server")
    return server


async def _create_template(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    await ensure_schema(with_database(admin_dsn, TEMPLATE_DB), migrate=True)


@pytest.fixture(scope="session")
def template_database(pg_server: PostgresServer) -> str:
    """A database migrated to head once; each test gets a copy of it."""
    asyncio.run(_create_template(pg_server.dsn))
    return TEMPLATE_DB


@pytest.fixture(scope="session")
def tcp_template_database(tcp_pg_server: TcpPostgres, pg_server: PostgresServer) -> str:
    """The template on the TCP server (the same one when the session runs over TCP)."""
    if pg_server is not tcp_pg_server:
        asyncio.run(_create_template(tcp_pg_server.dsn))
    return TEMPLATE_DB


@contextlib.asynccontextmanager
async def fresh_database(pg_server: PostgresServer, template: str | None) -> AsyncIterator[str]:
    """A new database copied from ``template`` (empty without one), dropped afterwards; yields
    its DSN."""
    name = f"test_{next(_counter)}"
    admin = await asyncpg.connect(pg_server.dsn)
    try:
        await admin.execute(
            f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
        )
    finally:
        await admin.close()
    yield with_database(pg_server.dsn, name)
    admin = await asyncpg.connect(pg_server.dsn)
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def tcp_dsn(tcp_pg_server: TcpPostgres, tcp_template_database: str) -> AsyncIterator[str]:
    """A fresh database at schema head on the TCP server (``sslmode=require``)."""
    async with fresh_database(tcp_pg_server, tcp_template_database) as fresh:
        yield fresh


@pytest.fixture
async def dsn(pg_server: PostgresServer, template_database: str) -> AsyncIterator[str]:
    """A fresh database at schema head for one test."""
    async with fresh_database(pg_server, template_database) as fresh:
        yield fresh


@pytest.fixture
async def other_dsn(pg_server: PostgresServer, template_database: str) -> AsyncIterator[str]:
    """A second fresh database, for tests that compare two runs."""
    async with fresh_database(pg_server, template_database) as fresh:
        yield fresh


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, for checking what the code under test wrote."""
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


def config_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "homeserver": {"address": "http://127.0.0.1:8008", "domain": "localhost"},
        "appservice": {
            "address": "http://127.0.0.1:29400",
            "hostname": "127.0.0.1",
            "port": 29400,
            "id": "pn-test",
            "bot_username": "_pn_bot",
            "as_token": AS_TOKEN,
            "hs_token": HS_TOKEN,
            "database": "embedded",
            "max_body_size": 1024 * 1024,
            "inbox": {"workers": 2, "retry_delay": 0.05, "max_attempts": 3},
        },
        "bridge": {"permissions": {"*": "block", "localhost": "user"}},
        "api": {},
        "logging": {"level": "DEBUG"},
    }
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return data


@pytest.fixture
def config() -> Config:
    return parse_config(config_data())


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A copy of ``config.example.yaml`` in the test's directory, as a newcomer starts."""
    path = tmp_path / "config.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "config.example.yaml", path)
    return path
