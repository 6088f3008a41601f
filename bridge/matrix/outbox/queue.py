"""Queueing outbox rows, and waking the sender only when something was queued."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from .actions import OutboxAction
from .store import OutboxStore


class OutboxQueue:
    """What handlers and listeners enqueue through.

    It remembers which connections' open transactions queued rows; :meth:`flush`, called with
    the connection once its transaction committed (and before the connection goes back to the
    pool), wakes the sender if that transaction queued any. Tracking per connection matters:
    with one flag for all, a transaction committing without rows would clear the flag of
    another still open, whose commit would then wake nobody. (A rolled-back enqueue costs one
    needless wake-up at that connection's next flush.)

    Other bridge processes learn of the rows from the database (see :mod:`bridge.db.wakeups`).
    """

    def __init__(self, store: OutboxStore) -> None:
        self._store = store
        self._wake: Callable[[], None] | None = None
        self._queued: set[int] = set()  # server pids of connections whose transaction queued

    def wake_with(self, wake: Callable[[], None]) -> None:
        """Set what :meth:`flush` calls (the sender's wake-up, which is built later)."""
        self._wake = wake

    async def enqueue(
        self, conn: asyncpg.Connection, lane: str, sender: str, action: OutboxAction
    ) -> int:
        """Queue ``action`` as ``sender`` at the end of ``lane``, in the caller's transaction."""
        self._queued.add(conn.get_server_pid())
        return await self._store.enqueue(conn, lane, sender, action)

    def committed(self) -> None:
        """Rows were queued by a statement outside a transaction, committed with it: wake
        the sender now."""
        if self._wake is not None:
            self._wake()

    def flush(self, conn: asyncpg.Connection) -> None:
        """``conn``'s transaction committed: wake the sender if it queued rows."""
        pid = conn.get_server_pid()
        if pid in self._queued:
            self._queued.discard(pid)
            if self._wake is not None:
                self._wake()
