"""Retention: finished inbox events, sent outbox actions and transaction records are deleted
once older than ``appservice.inbox.keep_days``, in small chunks, at start and then hourly."""

from __future__ import annotations

import logging

from ..db.database import Database
from ..periodic import PeriodicJob
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
        self._job = PeriodicJob("retention", self.purge, interval)

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

    @property
    def running(self) -> bool:
        return self._job.running

    def start(self) -> None:
        if self._keep_days > 0:
            self._job.start()

    async def stop(self) -> None:
        await self._job.stop()
