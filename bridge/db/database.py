"""The connection pool; stores act on connections taken from it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset round trip.

    The bridge keeps no session state (no LISTEN, SET, cursors or session-level advisory
    locks: only transaction-scoped ones), so the default ``RESET ALL; UNLISTEN *; ...`` query
    on every release would only cost a round trip. An open transaction is still rolled back.
    """


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


class Database:
    """An asyncpg pool with JSON codecs. Built unopened by the app factory, opened on start."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        application_name: str = "bridge",
        on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    ) -> None:
        """``application_name`` names this process to the server (``pg_stat_activity``) and
        is the payload of the wake-ups its commits send (see :mod:`bridge.db.wakeups`);
        ``on_connect`` is awaited with each new connection (e.g. its session's priority)."""
        self._on_connect = on_connect
        self.dsn = dsn
        self.application_name = application_name
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._after_commit: list[Callable[[asyncpg.Connection], None]] = []

    def after_commit(self, hook: Callable[[asyncpg.Connection], None]) -> None:
        """Call ``hook`` with the connection after every transaction of :meth:`transaction`
        commits, before the connection goes back to the pool (e.g. to wake the outbox sender
        for rows the transaction queued)."""
        self._after_commit.append(hook)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            init=self._init_connection,
            reset=_keep_session,
            command_timeout=60,
            server_settings={"application_name": self.application_name},
        )

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if self._on_connect is not None:
            await self._on_connect(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def acquire(self) -> Any:
        """``async with db.acquire() as conn``: a connection from the pool."""
        return self.pool.acquire()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only REPEATABLE READ transaction: every statement in it reads the same
        committed state (a count and the rows it counted agree, however long the reading)."""
        async with self.pool.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One DB transaction: committed on normal exit, rolled back on an exception."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                yield conn
            for hook in self._after_commit:
                hook(conn)
