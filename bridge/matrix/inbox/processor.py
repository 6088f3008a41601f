"""Inbox workers: process stored events per room, in arrival order, exactly once in effect."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

import asyncpg

from ...config import InboxConfig
from ...db.database import Database
from ..workers import WorkerPool
from .backlog import Backlog
from .dispatch import Dispatcher
from .events import InboxEvent
from .store import InboxStore

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
        after_commit: Callable[[asyncpg.Connection], None] | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self._after_commit = after_commit
        self._backlog = backlog
        self._backlog_counted = False  # the backlog's first count is read from the database
        self._db = db
        self._store = store
        self._dispatcher = dispatcher
        self._config = config
        self._pool = WorkerPool(
            "inbox-worker",
            config.workers,
            self.run_once,
            poll_interval=config.poll_interval,
            seconds_until_due=self._seconds_until_due,
            transient=(OSError, asyncpg.PostgresError, asyncpg.InterfaceError),
        )

    def wake(self) -> None:
        """New work was committed: rouse an idle worker."""
        self._pool.wake()

    def start(self) -> None:
        self._pool.start()

    async def stop(self) -> None:
        """Stop the workers; a batch being processed is rolled back and redone after restart."""
        await self._pool.stop()

    async def _seconds_until_due(self) -> float | None:
        async with self._db.acquire() as conn:
            return await self._store.seconds_until_due(conn)

    async def run_once(self) -> bool:
        """Process one batch from up to ``lanes_per_claim`` due lanes, each in arrival order.

        False when no lane was due (or all were taken by other workers).
        """
        async with self._db.acquire() as conn:
            async with conn.transaction():
                finished = await self._run_batch(conn)
            if finished is None:
                return False
            if self._after_commit is not None:
                self._after_commit(conn)  # e.g. wake the outbox sender for what the batch queued
        if self._backlog is not None:
            self._backlog.finished(finished)
        return True

    async def _run_batch(self, conn: asyncpg.Connection) -> int | None:
        """Claim lanes and apply their events in ``conn``'s transaction; return how many
        events are finished, None if no lane was claimed."""
        config = self._config
        if self._backlog is not None and not self._backlog_counted:
            self._backlog.reset(await self._store.count_pending(conn))
            self._backlog_counted = True
        claimed = await self._store.claim_lanes(conn, config.lanes_per_claim)
        if not claimed:
            if self._backlog is not None and self._backlog.pending:
                self._backlog.reset(await self._store.count_pending(conn))
            return None
        lanes = [lane for lane, _ in claimed]
        pending = await self._store.list_pending_lanes(conn, lanes, config.batch_size)
        retries, finished = await self._apply_lanes(conn, pending)
        postpone: dict[str, float] = {}
        release: list[tuple[str, int]] = []
        for lane, seq in claimed:
            events = pending.get(lane, [])
            if lane in retries:
                postpone[lane] = retries[lane]
            elif len(events) == config.batch_size:
                postpone[lane] = 0.0  # more to do: to the back of the queue
            else:
                release.append((lane, seq))
        if len(claimed) > 1:
            await self._store.lock_lanes(conn, sorted(lanes))
        kept = await self._store.release_lanes(conn, release)
        postpone.update(dict.fromkeys(kept, 0.0))
        await self._store.postpone_lanes(conn, postpone)
        return finished

    async def _apply_lanes(
        self, conn: asyncpg.Connection, pending: dict[str, list[InboxEvent]]
    ) -> tuple[dict[str, float], int]:
        """Apply every lane's events; return the lanes that must wait, with their delay, and
        how many events are finished (processed, ignored or dead).

        All lanes run optimistically in one savepoint; if anything fails there, each lane is
        redone on its own, so one bad event holds up only its own room.
        """
        if len(pending) == 1:
            ((lane, lane_events),) = pending.items()
            retry_in, finished = await self._apply(conn, lane_events)
            return ({} if retry_in is None else {lane: retry_in}), finished
        events = [ev for lane_events in pending.values() for ev in lane_events]
        try:
            async with conn.transaction():
                outcomes = await self._dispatcher.dispatch_many(conn, events)
                await self._store.mark_done(conn, [ev.id for ev in events], outcomes)
            return {}, len(events)
        except Exception as exc:  # any handler failure: redo lane by lane
            log.debug("A batch of %d lanes failed (%s); redoing lane by lane", len(pending), exc)
        retries: dict[str, float] = {}
        finished = 0
        for lane, lane_events in pending.items():
            retry_in, done = await self._apply(conn, lane_events)
            finished += done
            if retry_in is not None:
                retries[lane] = retry_in
        return retries, finished

    async def drain(self) -> int:
        """Process until no lane is due; return the batches run. For tools and tests."""
        batches = 0
        while await self.run_once():
            batches += 1
        return batches

    async def _apply(
        self, conn: asyncpg.Connection, events: list[InboxEvent]
    ) -> tuple[float | None, int]:
        """Apply a batch; return seconds until the lane is due again if an event must wait
        (None if not), and how many events are finished."""
        try:
            async with conn.transaction():
                outcomes = await self._dispatcher.dispatch_many(conn, events)
                await self._store.mark_done(conn, [ev.id for ev in events], outcomes)
            return None, len(events)
        except Exception as exc:
            if len(events) == 1:
                retry_in = await self._fail(conn, events[0], exc)
                return retry_in, int(retry_in is None)
        finished = 0
        for ev in events:
            try:
                async with conn.transaction():
                    outcome = await self._dispatcher.dispatch(conn, ev)
                    await self._store.mark_done(conn, [ev.id], [outcome])
            except Exception as exc:
                retry_in = await self._fail(conn, ev, exc)
                if retry_in is not None:
                    return retry_in, finished
            finished += 1
        return None, finished

    async def _fail(
        self, conn: asyncpg.Connection, event: InboxEvent, exc: Exception
    ) -> float | None:
        """Record a failure of ``event``; return the delay before its retry, None if dead."""
        attempts = event.attempts + 1
        error = describe_error(exc)
        if attempts >= self._config.max_attempts:
            log.error(
                "Dead-lettering %s (%s in %s) after %d attempts: %s",
                event.event_id,
                event.event_type,
                event.lane,
                attempts,
                exc,
            )
            await self._store.dead_letter(conn, event, attempts, error)
            return None
        log.warning(
            "Processing %s (%s) failed (attempt %d of %d): %s",
            event.event_id,
            event.event_type,
            attempts,
            self._config.max_attempts,
            exc,
        )
        await self._store.record_failure(conn, event.id, attempts, error)
        return float(self._config.retry_delay * 2 ** (attempts - 1))
