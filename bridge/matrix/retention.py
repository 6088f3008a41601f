"""Retention: finished inbox events, sent outbox actions and transaction records are deleted
once older than ``appservice.inbox.keep_days``, in small chunks, at start and then hourly."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from ..db.database import Database
from .inbox.store import InboxStore
from .outbox.store import OutboxStore

log = logging.getLogger(__name__)

_CHUNK = 5000  # rows per DB transaction: short locks, bounded WAL per statement


class Retention:
    def __init__(
        self,
        db: Database,
        inbox: InboxStore,
        outbox: OutboxStore,
        keep_days: float,
        *,
        interval: float = 3600.0,
    ) -> None:
        self._db = db
        self._inbox = inbox
        self._outbox = outbox
        self._keep_days = keep_days
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def purge(self) -> int:
        """Delete everything past its time, a chunk per DB transaction; return rows deleted."""
        total = 0
        for purge in (
            self._inbox.purge_finished,
            self._inbox.purge_transactions,
            self._outbox.purge_finished,
        ):
            while True:
                async with self._db.transaction() as conn:
                    deleted = await purge(conn, self._keep_days, _CHUNK)
                total += deleted
                if deleted < _CHUNK:
                    break
        if total:
            log.info("Retention: deleted %d rows older than %g days", total, self._keep_days)
        return total

    def start(self) -> None:
        if self._keep_days > 0:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.purge()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("Retention purge failed (will try again): %s", exc)
            await asyncio.sleep(self._interval)
