"""Inbox workers: process stored events per room, in arrival order, exactly once in effect."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from ...config import InboxConfig
from ...db.database import Database
from ...metrics import Metrics
from ..workers import WorkerPool
from .backlog import Backlog
from .dispatch import Dispatcher
from .events import EventRefused, InboxEvent
from .store import InboxStore

log = logging.getLogger(__name__)
#: One batch: events finished, the events taken by lane, the lanes to retry with their delay.
_Batch = tuple[int, dict[str, list[InboxEvent]], dict[str, float]]

_MAX_ERROR_CHARS = 500


def describe_error(exc: BaseException) -> str:
    """The error as stored with a failing event: one bounded, readable line (its type and
    message); the traceback goes to the log only."""
    if isinstance(exc, EventRefused):
        text = str(exc)
    else:
        message = str(exc)
        text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text = " ".join(text.split())  # one line: no newlines or tabs from the message
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text


def _ids(event: InboxEvent) -> dict[str, str]:
    """Log fields naming the event (JSON log lines carry them)."""
    return {"room_id": event.lane, "event_id": event.event_id, "txn_id": event.txn_id}


class InboxProcessor:
    """A pool of workers; each claims one room's lane at a time and works through it in order.

    An event's effects and its "processed" mark are committed in one DB transaction. A batch
    runs optimistically in one savepoint; if anything in it fails, the batch is redone one
    event per savepoint, so the failing event alone is retried later (with back-off) and, after
    ``max_attempts``, moved to the dead letters while its room goes on.

    With ``inbox.synchronous_commit: false`` a batch's commit does not wait for the disk: the
    events stay in the inbox until the batch's mark is committed, so a database
    crash that loses the last batches loses their effects and their marks together, and they
    are processed again. Nothing leaves the database on the strength of such a commit: the
    outbox sender claims a lane in a transaction that waits for the disk, which writes out
    everything committed before it (the batch that queued the action included) before
    anything is sent, as does any later write that depends on the batch. Intake, which the
    homeserver's answer waits on, always waits for the disk; the workers' commits do not
    stand in line with it.
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
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
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
        started = time.perf_counter()
        async with self._db.acquire() as conn:
            async with conn.transaction():
                batch = await self._run_batch(conn)
            if batch is None:
                return False
            if self._after_commit is not None:
                self._after_commit(conn)  # e.g. wake the outbox sender for what the batch queued
        finished, pending, retries = batch
        if self._backlog is not None:
            self._backlog.finished(finished)
        if self._metrics is not None:
            self._metrics.observe_batch(started, pending, retries)
        return True

    async def _run_batch(self, conn: asyncpg.Connection) -> _Batch | None:
        """Claim lanes and apply their events in ``conn``'s transaction; return how many
        events are finished, the events by lane and the lanes to retry (None if no lane was
        claimed)."""
        config = self._config
        if self._backlog is not None and not self._backlog_counted:
            self._backlog.reset(await self._store.count_pending(conn))
            self._backlog_counted = True
        claimed = await self._store.claim_lanes(
            conn, config.lanes_per_claim, flush_commit=config.synchronous_commit
        )
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
        return finished, pending, retries

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
        if isinstance(exc, EventRefused):  # retrying can't help: dead-lettered at once
            log.warning(
                "Dead-lettering %s (%s in %s), refused: %s",
                event.event_id,
                event.event_type,
                event.lane,
                error,
            )
            await self._store.dead_letter(conn, event, attempts, error)
            return None
        if attempts >= self._config.max_attempts:
            log.error(
                "Dead-lettering %s (%s in %s) after %d attempts: %s",
                event.event_id,
                event.event_type,
                event.lane,
                attempts,
                error,
                exc_info=exc,
                extra=_ids(event),
            )
            await self._store.dead_letter(conn, event, attempts, error)
            if self._metrics is not None:
                self._metrics.dead_letters.labels("inbox", "failed").inc()
            return None
        log.warning(
            "Processing %s (%s) failed (attempt %d of %d): %s",
            event.event_id,
            event.event_type,
            attempts,
            self._config.max_attempts,
            error,
            exc_info=exc,
            extra=_ids(event),
        )
        await self._store.record_failure(conn, event.id, attempts, error)
        return float(self._config.retry_delay * 2 ** (attempts - 1))
