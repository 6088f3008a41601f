"""The token user's cache: a rename or removal by another app instance on the same database (or
by a plain statement) is seen by the next request once its notification arrived; this
instance's own renames at once; without a listening connection the cache is not trusted."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from bridge.api.context import ApiServices
from bridge.db.database import Database
from bridge.db.wakeups import WakeupListener
from bridge.services import build_services
from bridge.users.cache import USER_CHANNEL
from tests.api.conftest import api_config, hs_token, serve

CONVERSATIONS = "/messaging-api/v1/conversations"


@dataclass
class Instance:
    """One bridge app's REST side: its pool, services, listening connection and client."""

    client: Any
    services: ApiServices
    listener: WakeupListener

    async def get(self, sub: uuid.UUID, name: str | None = None) -> int:
        token = hs_token(sub, **({"name": name} if name else {}))
        resp = await self.client.get(CONVERSATIONS, headers={"Authorization": f"Bearer {token}"})
        await resp.read()
        return resp.status

    def cached(self, sub: uuid.UUID) -> str | None:
        return self.services.users.cache.name(sub)


@asynccontextmanager
async def instance(aiohttp_client: Any, dsn: str, name: str) -> AsyncIterator[Instance]:
    db = Database(dsn, min_size=1, max_size=3)
    await db.open()
    services = build_services(db)
    cache = services.users.cache
    listener = WakeupListener(dsn, name, {}, payload_handlers={USER_CHANNEL: cache.changed})
    cache.follow(listener.listening.is_set)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        client = await serve(aiohttp_client, api_config(), db, services)
        yield Instance(client, services, listener)
    finally:
        await listener.stop()
        await db.close()


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def stored_name(conn: asyncpg.Connection, sub: uuid.UUID) -> str | None:
    name: str | None = await conn.fetchval(
        "SELECT display_name FROM network_user WHERE id = $1", sub
    )
    return name


async def test_rename_by_another_instance_is_seen(
    aiohttp_client: Any, dsn: str, conn: asyncpg.Connection
) -> None:
    sub = uuid.uuid4()
    async with (
        instance(aiohttp_client, dsn, "bridge-a") as a,
        instance(aiohttp_client, dsn, "bridge-b") as b,
    ):
        assert await a.get(sub, "Ann") == 200
        assert a.cached(sub) == "Ann"  # the usual path from now on: no read
        assert await a.get(sub, "Ann") == 200

        assert await b.get(sub, "Ann Jones") == 200  # B renames the user
        assert await stored_name(conn, sub) == "Ann Jones"
        await until(lambda: a.cached(sub) is None)  # A heard of it
        # A's next request with the old name renames the user back, as without a cache.
        assert await a.get(sub, "Ann") == 200
        assert await stored_name(conn, sub) == "Ann"


async def test_own_rename_is_seen_at_once(
    aiohttp_client: Any, dsn: str, conn: asyncpg.Connection
) -> None:
    sub = uuid.uuid4()
    async with instance(aiohttp_client, dsn, "bridge-a") as a:
        assert await a.get(sub, "Ann") == 200
        assert await a.get(sub, "Ann Smith") == 200
        assert await stored_name(conn, sub) == "Ann Smith"
        assert await a.get(sub, "Ann") == 200  # no wait: this instance's own change
        assert await stored_name(conn, sub) == "Ann"


async def test_statement_rename_and_removal_are_seen(
    aiohttp_client: Any, dsn: str, conn: asyncpg.Connection
) -> None:
    sub = uuid.uuid4()
    async with instance(aiohttp_client, dsn, "bridge-a") as a:
        assert await a.get(sub, "Ann") == 200
        assert a.cached(sub) == "Ann"
        await conn.execute("UPDATE network_user SET display_name = 'Operator' WHERE id = $1", sub)
        await until(lambda: a.cached(sub) is None)
        assert await a.get(sub, "Ann") == 200
        assert await stored_name(conn, sub) == "Ann"

        await conn.execute("DELETE FROM network_user WHERE id = $1", sub)
        await until(lambda: a.cached(sub) is None)
        assert await a.get(sub, "Ann") == 200  # created again on its next request
        assert await stored_name(conn, sub) == "Ann"

        other = uuid.uuid4()
        assert await a.get(other, "Bob") == 200
        assert a.cached(other) == "Bob"
        await conn.execute("TRUNCATE network_user CASCADE")
        await until(lambda: a.cached(other) is None and a.cached(sub) is None)
        assert await a.get(other, "Bob") == 200
        assert await stored_name(conn, other) == "Bob"


async def test_not_trusted_without_the_listening_connection(
    aiohttp_client: Any, dsn: str, conn: asyncpg.Connection
) -> None:
    sub = uuid.uuid4()
    async with instance(aiohttp_client, dsn, "bridge-a") as a:
        assert await a.get(sub, "Ann") == 200
        assert a.cached(sub) == "Ann"
        await a.listener.stop()
        assert a.cached(sub) is None
        await conn.execute("UPDATE network_user SET display_name = 'Operator' WHERE id = $1", sub)
        assert await a.get(sub, "Ann") == 200  # read again, renamed back
        assert await stored_name(conn, sub) == "Ann"
        assert a.cached(sub) is None  # nothing is stored while nobody listens
        # Listening again: the cache starts empty, then fills.
        a.listener.start()
        await asyncio.wait_for(a.listener.listening.wait(), 10)
        assert a.cached(sub) is None
        assert await a.get(sub, "Ann") == 200
        assert a.cached(sub) == "Ann"
