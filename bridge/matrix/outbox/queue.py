"""Queueing outbox rows, and waking the sender only when something was queued."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from .actions import OutboxAction
from .store import OutboxStore


class OutboxQueue:
    """What handlers and listeners enqueue through.

    It remembers that rows were queued; :meth:`flush`, called after the queueing transaction
    committed, wakes the sender once. (A rolled-back enqueue costs one needless wake-up.)
    """

    def __init__(self, store: OutboxStore) -> None:
        self._store = store
        self._wake: Callable[[], None] | None = None
        self._queued = False

    def wake_with(self, wake: Callable[[], None]) -> None:
        """Set what :meth:`flush` calls (the sender's wake-up, which is built later)."""
        self._wake = wake

    async def enqueue(
        self, conn: asyncpg.Connection, lane: str, sender: str, action: OutboxAction
    ) -> int:
        """Queue ``action`` as ``sender`` at the end of ``lane``, in the caller's transaction."""
        self._queued = True
        return await self._store.enqueue(conn, lane, sender, action)

    def flush(self) -> None:
        if self._queued and self._wake is not None:
            self._queued = False
            self._wake()
