"""Durable intake: a transaction's events are committed to the inbox before it is answered."""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from ...db.database import Database
from ...metrics import Metrics
from .backlog import Backlog
from .events import IncomingEvent, RejectedEvent
from .store import InboxStore

log = logging.getLogger(__name__)

# Concurrent resends of the same events can deadlock on their unique keys; Postgres aborts one
# of them and a retry then finds the events stored.
_DEADLOCK_RETRIES = 3


class IntakeService:
    """Stores transactions in the inbox and wakes the workers."""

    def __init__(
        self,
        db: Database,
        store: InboxStore,
        on_new_events: Callable[[], None],
        backlog: Backlog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._db = db
        self._store = store
        self._on_new_events = on_new_events
        self._backlog = backlog

    async def receive(
        self,
        txn_id: str,
        body_sha256: bytes,
        events: list[IncomingEvent],
        rejected: list[RejectedEvent],
        body_text: str | None = None,
    ) -> int:
        """Commit the transaction's events (and rejects) atomically; return how many were new.

        With a backlog over its limit, return only once processing has caught up (or the
        backlog's longest hold has passed): the events are committed either way.
        """
        stored = await self.receive_next(txn_id, body_sha256, events, rejected, body_text)
        assert stored is not None  # nothing to admit: always stored
        return stored

    async def receive_next(
        self,
        txn_id: str,
        body_sha256: bytes,
        events: list[IncomingEvent],
        rejected: list[RejectedEvent],
        body_text: str | None = None,
        *,
        next_txn: int | None = None,
        gap_grace: float = 0.0,
    ) -> int | None:
        """:meth:`receive`, and with ``next_txn`` only if it is the transaction number that
        the gap watch expects next and no gap is due (one statement: the acknowledgement's
        one round trip); None when it was not stored for that reason."""
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                async with self._db.acquire() as conn:
                    stored = await self._store.insert_transaction(
                        conn,
                        txn_id,
                        body_sha256,
                        events,
                        rejected,
                        body_text,
                        next_txn=next_txn,
                        gap_grace=gap_grace,
                    )
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == _DEADLOCK_RETRIES:
                    raise
                log.info("Transaction %s met a concurrent duplicate; retrying", txn_id)
        if stored is None:
            return None
        if self._metrics is not None:
            self._metrics.transaction_stored(len(events), stored, len(rejected))
            if rejected:
                self._metrics.dead_letters.labels("intake", "malformed").inc(len(rejected))
        if rejected:
            log.warning(
                "Transaction %s: %d malformed event(s) dead-lettered", txn_id, len(rejected)
            )
        if stored:
            if self._backlog is not None:
                self._backlog.added(stored)
            self._on_new_events()
        if self._backlog is not None:
            await self._backlog.wait_for_room()
        return stored
