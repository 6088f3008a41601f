"""Inbox workers: process stored events per room, in arrival order, exactly once in effect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable

import asyncpg

from ..config import InboxConfig
from ..db.database import Database
from .dispatch import Dispatcher
from .events import InboxEvent, Outcome
from .inbox_store import InboxStore

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 4000


def describe_error(exc: BaseException) -> str:
    """The error as stored with a failing event: type, message, and where it was raised."""
    text = "".join(traceback.format_exception(exc, limit=8))
    return text[-_MAX_ERROR_CHARS:]


class InboxProcessor:
    """A pool of workers; each claims one room's lane at a time and works through it in order.

    An event's effects and its "processed" mark are committed in one DB transaction. A batch
    runs optimistically in one savepoint; if anything in it fails, the batch is redone one
    event per savepoint, so the failing event alone is retried later (with back-off) and, after
    ``max_attempts``, moved to the dead letters while its room goes on.
    """

    def __init__(
        self,
        db: Database,
        store: InboxStore,
        dispatcher: Dispatcher,
        config: InboxConfig,
        *,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._after_commit = after_commit
        self._db = db
        self._store = store
        self._dispatcher = dispatcher
        self._config = config
        self._wakeups: list[asyncio.Event] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def wake(self) -> None:
        """New work was committed: wake every idle worker."""
        for event in self._wakeups:
            event.set()

    def start(self) -> None:
        self._stopping = False
        for n in range(self._config.workers):
            wakeup = asyncio.Event()
            wakeup.set()
            self._wakeups.append(wakeup)
            self._tasks.append(asyncio.create_task(self._worker(wakeup), name=f"inbox-worker-{n}"))

    async def stop(self) -> None:
        """Stop the workers; a batch being processed is rolled back and redone after restart."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._wakeups.clear()

    async def _worker(self, wakeup: asyncio.Event) -> None:
        failures = 0
        while not self._stopping:
            wakeup.clear()
            try:
                worked = await self.run_once()
                failures = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The database is unreachable or refused: nothing was committed; retry later.
                failures += 1
                log.warning("Inbox worker: %s; retrying (failure %d)", exc, failures)
                worked = False
            if worked:
                continue
            timeout = self._config.poll_interval * min(2**failures, 16)
            if not failures:
                timeout = await self._idle_timeout(timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)

    async def _idle_timeout(self, default: float) -> float:
        try:
            async with self._db.acquire() as conn:
                due = await self._store.seconds_until_due(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return default
        return default if due is None else min(default, max(due, 0.01))

    async def run_once(self) -> bool:
        """Process one batch of one due lane. False when no lane was due (or all were taken)."""
        async with self._db.acquire() as conn, conn.transaction():
            claimed = await self._store.claim_lane(conn)
            if claimed is None:
                return False
            lane, seq = claimed
            events = await self._store.list_pending(conn, lane, self._config.batch_size)
            retry_in = await self._apply(conn, events) if events else None
            if retry_in is not None:
                await self._store.postpone_lane(conn, lane, retry_in)
            elif len(events) == self._config.batch_size:
                await self._store.postpone_lane(conn, lane, 0)
            elif not await self._store.release_lane(conn, lane, seq):
                await self._store.postpone_lane(conn, lane, 0)
        if self._after_commit is not None:
            self._after_commit()  # e.g. wake the outbox sender for what the batch queued
        return True

    async def drain(self) -> int:
        """Process until no lane is due; return the batches run. For tools and tests."""
        batches = 0
        while await self.run_once():
            batches += 1
        return batches

    async def _apply(self, conn: asyncpg.Connection, events: list[InboxEvent]) -> float | None:
        """Apply a batch; return seconds until the lane is due again if an event must wait."""
        try:
            async with conn.transaction():
                outcomes = [await self._dispatcher.dispatch(conn, ev) for ev in events]
                await self._store.mark_done(conn, [ev.id for ev in events], outcomes)
            return None
        except Exception as exc:  # noqa: BLE001 - any handler failure: redo event by event
            if len(events) == 1:
                return await self._fail(conn, events[0], exc)
        for ev in events:
            try:
                async with conn.transaction():
                    outcome = await self._dispatcher.dispatch(conn, ev)
                    await self._store.mark_done(conn, [ev.id], [outcome])
            except Exception as exc:  # noqa: BLE001
                retry_in = await self._fail(conn, ev, exc)
                if retry_in is not None:
                    return retry_in
        return None

    async def _fail(
        self, conn: asyncpg.Connection, event: InboxEvent, exc: Exception
    ) -> float | None:
        """Record a failure of ``event``; return the delay before its retry, None if dead."""
        attempts = event.attempts + 1
        error = describe_error(exc)
        if attempts >= self._config.max_attempts:
            log.error(
                "Dead-lettering %s (%s in %s) after %d attempts: %s",
                event.event_id, event.event_type, event.lane, attempts, exc,
            )
            await self._store.dead_letter(conn, event, attempts, error)
            return None
        log.warning(
            "Processing %s (%s) failed (attempt %d of %d): %s",
            event.event_id, event.event_type, attempts, self._config.max_attempts, exc,
        )
        await self._store.record_failure(conn, event.id, attempts, error)
        return float(self._config.retry_delay * 2 ** (attempts - 1))
