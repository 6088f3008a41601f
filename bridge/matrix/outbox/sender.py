"""The outbox sender: Matrix side effects, sent in order per lane and retried durably.

Domain code enqueues rows (:class:`~bridge.matrix.outbox.store.OutboxStore`) in the DB
transaction of its change, then calls :meth:`OutboxSender.wake`. A worker leases a lane
(:class:`~bridge.matrix.outbox.lane_store.OutboxLaneStore`: one short statement), sends a small
batch of the lane's rows outside any DB transaction, and records each result in a short
transaction that first proves the lease is still its own. No transaction, row lock or advisory
lock is held while the homeserver is talked to.

The lease is renewed before any request that might outlast it, so no request of a holder is in
flight once its lease has expired; a lane whose holder died or stalled is taken over by any
sender (of any process) when the lease expires, and the stalled holder, finding its lease gone,
drops the lane without recording anything. Rows are sent strictly one after another per lane,
so per-room order holds across processes and takeovers. A row whose result was not recorded
(the holder died after the homeserver accepted it) is sent again with the same Matrix
transaction id (:func:`matrix_txn_id`), and the homeserver answers with the event it already
made.

Over 400 lines because it is one mechanism whose parts share the lane's lease: claim, resolve
references, perform, classify a failure, retry or dead-letter and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from ...config import OutboxConfig
from ...db.database import Database
from ...metrics import Metrics
from ..bridging.portal_store import PortalStore
from ..workers import WorkerPool
from .actions import (
    CreateRoom,
    Invite,
    Join,
    Kick,
    Leave,
    OutboxAction,
    Redact,
    RoomAction,
    Send,
    SetProfile,
    SetState,
    Unreadable,
    from_json,
    kind_of,
    to_json,
)
from .failures import (
    FailureKind,
    InvalidPayload,
    LeaseLost,
    NotReady,
    Undeliverable,
    classify,
    describe,
    error_text,
    matrix_error,
    short_error,
)
from .intents import Intents, RoomSpec, retry_after_ms
from .lane_store import LaneClaim, OutboxLaneStore
from .store import OutboxItem, OutboxRow, OutboxStore

log = logging.getLogger(__name__)

#: Lane prefix of a conversation whose portal room may not exist yet.
CONVERSATION_LANE_PREFIX = "conv:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def conversation_lane(conversation_id: uuid.UUID | str) -> str:
    """The lane of a conversation's portal: ordered from before its room exists."""
    return f"{CONVERSATION_LANE_PREFIX}{conversation_id}"


def matrix_txn_id(row: OutboxRow) -> str:
    """The Matrix transaction id of a row: the same on every attempt, unique per row.

    The creation time makes it unique beyond the row id, which restarts with a new database
    while the homeserver still remembers transaction ids it saw.
    """
    micros = (row.created_at - _EPOCH) // timedelta(microseconds=1)
    return f"bridge-outbox-{row.id}-{micros}"


#: Tuning of the sender: the config section ``appservice.outbox`` (validated when loaded).
OutboxSettings = OutboxConfig


def backoff(settings: OutboxSettings, attempts: int) -> float:
    """The wait after the ``attempts``-th failure: doubling from ``retry_delay``, capped."""
    exponent = min(max(attempts - 1, 0), 32)
    return float(min(settings.retry_delay * 2**exponent, settings.max_retry_delay))


#: Called in the DB transaction that marks a row sent, with the homeserver's result.
SentHook = Callable[[asyncpg.Connection, OutboxRow, dict[str, Any]], Awaitable[None]]


def _room_spec(action: CreateRoom) -> RoomSpec:
    return RoomSpec(
        name=action.name,
        topic=action.topic,
        alias_localpart=action.alias_localpart,
        invite=list(action.invite),
        is_direct=action.is_direct,
        preset=action.preset,
        power_levels=action.power_levels,
        initial_state=action.initial_state,
        creation_content=action.creation_content,
        room_version=action.room_version,
    )


def _set_pointer(document: dict[str, Any], pointer: str, value: Any) -> None:
    """Set ``value`` at a JSON Pointer (RFC 6901) in ``document``, creating objects on the way."""
    if not pointer.startswith("/"):
        raise InvalidPayload(f"payload.refs key {pointer!r} is not a JSON pointer")
    *parents, last = (t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))
    node = document
    for token in parents:
        child = node.setdefault(token, {})
        if not isinstance(child, dict):
            raise InvalidPayload(f"payload.refs key {pointer!r} crosses a non-object")
        node = child
    node[last] = value


def _required(value: str | None, name: str) -> str:
    if not value:
        raise InvalidPayload(f"payload.{name} must be a non-empty string")
    return value


# --- the sender -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Failed:
    retry_in: float | None  # the lane waits this long; None: the row is dead, the lane goes on
    reported: bool = False  # a notice reporting the dead row was queued in the lane


@dataclass(slots=True)
class _Lease:
    """A worker's lease on a lane; ``expires`` on the event loop's clock, never later than the
    database's expiry (it is counted from before the statement that set it)."""

    claim: LaneClaim
    expires: float

    @property
    def lane(self) -> str:
        return self.claim.lane


class OutboxSender:
    """A pool of workers; each claims one lane at a time and sends its rows in order.

    The actions, their payloads and results are :mod:`.actions`; a ``CreateRoom`` with a
    ``conversation_id`` records the ``portal`` row in the transaction marking the row sent.

    Failures: a 429 postpones the lane by ``retry_after_ms`` (capped at ``max_retry_delay``)
    without counting an attempt; 5xx, network errors and timeouts back off exponentially and
    give up after ``max_attempts``; a permanent 4xx is given up on at once. A row given up on
    is dead-lettered, and the bot reports it in its room with an ``m.notice`` (a failing
    report is not reported again).
    """

    def __init__(
        self,
        db: Database,
        store: OutboxStore,
        intents: Intents,
        settings: OutboxSettings,
        *,
        portals: PortalStore | None = None,
        on_sent: SentHook | None = None,
        metrics: Metrics | None = None,
        owner: str = "bridge",
    ) -> None:
        self._metrics = metrics
        self._owner = owner
        self._db = db
        self._store = store
        self._lanes = OutboxLaneStore()
        self._portals = portals or PortalStore()
        self._intents = intents
        self._settings = settings
        self._on_sent = on_sent
        self._pool = WorkerPool(
            "outbox-worker",
            settings.workers,
            self.run_once,
            poll_interval=settings.poll_interval,
            seconds_until_due=self._seconds_until_due,
            transient=(OSError, asyncpg.PostgresError, asyncpg.InterfaceError),
        )

    @property
    def _stopping(self) -> bool:
        return self._pool.stopping

    def wake(self) -> None:
        """New rows were committed: rouse an idle worker."""
        self._pool.wake()

    def start(self) -> None:
        """Start the workers."""
        self._pool.start()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the workers, letting batches in flight finish for up to ``grace`` seconds.

        A batch cut short is rolled back and resent later (idempotently).
        """
        await self._pool.stop(grace)

    async def _seconds_until_due(self) -> float | None:
        async with self._db.acquire() as conn:
            return await self._store.seconds_until_due(conn)

    async def run_once(self) -> bool:
        """Send one batch of one due lane. False when no lane was due (or all were taken)."""
        async with self._db.acquire() as conn:  # no transaction: statements commit one by one
            lease = await self._claim(conn)
            if lease is None:
                return False
            lane, claim = lease.lane, lease.claim
            try:
                rows = await self._store.list_pending(conn, lane, self._settings.batch_size)
                retry_in, reported = await self._deliver(conn, lease, rows)
                if retry_in is not None:
                    await self._lanes.postpone(conn, lane, claim.lease, retry_in)
                elif reported or len(rows) == self._settings.batch_size:
                    await self._lanes.postpone(conn, lane, claim.lease, 0)
                else:
                    await self._lanes.release(conn, lane, claim.lease, claim.seq)
            except LeaseLost:
                log.warning("Outbox lane %s was taken over (our lease expired); leaving it", lane)
            except Exception:
                # The database failed us mid-batch: hand the lane back at once if it still
                # answers (rows not recorded stay pending), else the lease runs out.
                with contextlib.suppress(Exception):
                    await self._lanes.postpone(conn, lane, claim.lease, 0)
                raise
        return True

    async def _claim(self, conn: asyncpg.Connection) -> _Lease | None:
        started = asyncio.get_running_loop().time()
        claim = await self._lanes.claim(conn, self._owner, self._settings.lease_seconds)
        if claim is None:
            return None
        if claim.taken_from is not None:
            log.warning(
                "Taking over outbox lane %s from %s, whose lease expired",
                claim.lane,
                claim.taken_from,
            )
        return _Lease(claim, started + self._settings.lease_seconds)

    async def _renew(self, conn: asyncpg.Connection, lease: _Lease) -> None:
        """Extend the lease, or raise :class:`LeaseLost`. In a transaction, this also proves
        the lease until commit (the lane's row stays locked)."""
        started = asyncio.get_running_loop().time()
        seconds = self._settings.lease_seconds
        if not await self._lanes.renew(conn, lease.lane, lease.claim.lease, seconds):
            raise LeaseLost(lease.lane)
        lease.expires = started + seconds

    async def _keep_for_a_request(self, conn: asyncpg.Connection, lease: _Lease) -> None:
        """Renew unless the lease outlasts the longest request with room to spare."""
        settings = self._settings
        spare = (settings.lease_seconds - settings.request_timeout) / 2
        if lease.expires - asyncio.get_running_loop().time() < settings.request_timeout + spare:
            await self._renew(conn, lease)

    async def drain(self) -> int:
        """Send until no lane is due; return the batches run. For tools and tests."""
        batches = 0
        while await self.run_once():
            batches += 1
        return batches

    async def _deliver(
        self, conn: asyncpg.Connection, lease: _Lease, rows: list[OutboxRow]
    ) -> tuple[float | None, bool]:
        """Send rows in order until one must be retried; return its wait, and whether a
        failure was reported in the lane."""
        reported = False
        for row in rows:
            if self._stopping:
                break  # the rest stays pending; the lane is not released while it has rows
            await self._keep_for_a_request(conn, lease)
            failed = await self._deliver_row(conn, lease, row)
            if failed is None:
                continue
            reported = reported or failed.reported
            if failed.retry_in is not None:
                return failed.retry_in, reported
        return None, reported

    async def _deliver_row(
        self, conn: asyncpg.Connection, lease: _Lease, row: OutboxRow
    ) -> _Failed | None:
        room_id: str | None = None
        try:
            action = row.action
            if isinstance(action, Unreadable):
                room_id = action.room_id
                raise InvalidPayload(action.reason)
            if isinstance(action, RoomAction):
                room_id = await self._room_of(conn, row.lane, action)
            action = await self._resolve_refs(conn, action)
            portal: uuid.UUID | None = None
            if isinstance(action, CreateRoom) and action.conversation_id is not None:
                portal = self._conversation_id(action.conversation_id)
                existing = await self._portals.get_portal_by_conversation(conn, portal)
                if existing is not None:
                    log.info("Conversation %s already has portal %s", portal, existing.room_id)
                    await self._record_sent(conn, lease, row, {"room_id": existing.room_id}, None)
                    return None
            async with asyncio.timeout(self._settings.request_timeout):
                result = await self._perform(row, room_id, action)
            await self._record_sent(conn, lease, row, result, portal)
            if self._metrics is not None:
                self._metrics.outbox_result("sent")
            return None
        except LeaseLost:
            raise
        except Exception as exc:  # every failure is recorded on the row
            return await self._fail(conn, lease, row, exc, room_id)

    async def _record_sent(
        self,
        conn: asyncpg.Connection,
        lease: _Lease,
        row: OutboxRow,
        result: dict[str, Any],
        conversation_id: uuid.UUID | None,
    ) -> None:
        async with conn.transaction():  # a failing hook rolls back this row's record only
            await self._renew(conn, lease)
            if conversation_id is not None:
                room_id = str(result["room_id"])
                portal = await self._portals.claim_portal(
                    conn, room_id, conversation_id, result.get("alias")
                )
                if portal is None:
                    raise Undeliverable(f"room {room_id} or its alias has another conversation")
                if portal != room_id:
                    log.warning(
                        "Conversation %s got portal %s meanwhile; room %s is unused",
                        conversation_id,
                        portal,
                        room_id,
                    )
                    result = {"room_id": portal}
            await self._store.mark_sent(conn, row.id, result)
            if self._on_sent is not None:
                await self._on_sent(conn, row, result)
        log.debug("Outbox row %d (%s in %s) sent: %s", row.id, row.kind, row.lane, result)

    @staticmethod
    def _conversation_id(value: str) -> uuid.UUID:
        try:
            return uuid.UUID(value)
        except ValueError:
            raise InvalidPayload("payload.conversation_id must be a UUID") from None

    async def _room_of(self, conn: asyncpg.Connection, lane: str, action: RoomAction) -> str:
        if action.room_id is not None:
            return action.room_id
        if not lane.startswith(CONVERSATION_LANE_PREFIX):
            raise InvalidPayload("payload.room_id is required outside a conversation lane")
        try:
            conversation_id = uuid.UUID(lane.removeprefix(CONVERSATION_LANE_PREFIX))
        except ValueError:
            raise InvalidPayload(f"lane {lane!r} names no conversation") from None
        portal = await self._portals.get_portal_by_conversation(conn, conversation_id)
        if portal is not None:
            return portal.room_id
        if await self._store.has_dead_row(conn, lane, kind_of(CreateRoom)):
            raise Undeliverable(f"the portal room of conversation {conversation_id} was never made")
        raise NotReady(f"conversation {conversation_id} has no portal room yet")

    async def _resolve_refs(self, conn: asyncpg.Connection, action: OutboxAction) -> OutboxAction:
        """The action with each ``refs`` pointer set to the event its row made."""
        if not action.refs:
            return action
        found = await self._store.get_results(conn, list(action.refs.values()))
        document = to_json(action)
        del document["refs"]
        for pointer, ref_id in action.refs.items():
            ref = found.get(ref_id)
            if ref is None or ref.state == "dead":
                raise Undeliverable(f"it refers to outbox row {ref_id}, which was not sent")
            if ref.state != "sent":
                raise NotReady(f"waiting for outbox row {ref_id}")
            event_id = (ref.result or {}).get("event_id")
            if not isinstance(event_id, str):
                raise Undeliverable(f"outbox row {ref_id} made no event")
            _set_pointer(document, pointer, event_id)
        resolved = from_json(kind_of(action), document)
        if isinstance(resolved, Unreadable):
            raise InvalidPayload(f"after resolving refs, {resolved.reason}")
        return resolved

    async def _perform(
        self, row: OutboxRow, room_id: str | None, action: OutboxAction
    ) -> dict[str, Any]:
        """Do the row's action on the homeserver; return what to record as its result."""
        it, user = self._intents, row.sender
        room = room_id or ""
        match action:
            case Send():
                event_id = await it.send(
                    user, room, action.event_type, action.content, matrix_txn_id(row)
                )
                return {"event_id": event_id, "room_id": room}
            case Redact():
                event_id = await it.redact(
                    user,
                    room,
                    _required(action.event_id, "event_id"),
                    action.reason,
                    matrix_txn_id(row),
                )
                return {"event_id": event_id, "room_id": room}
            case SetState():
                event_id = await it.set_state(
                    user, room, action.event_type, action.state_key, action.content
                )
                return {"event_id": event_id, "room_id": room}
            case Invite():
                await it.invite(user, room, action.user_id, action.reason)
                return {"room_id": room}
            case Join():
                return {"room_id": await it.join(user, room)}
            case Leave():
                await it.leave(user, room, action.reason)
                return {"room_id": room}
            case Kick():
                await it.kick(user, room, action.user_id, action.reason)
                return {"room_id": room}
            case SetProfile():
                profile = action.fields()
                if not profile:
                    raise InvalidPayload("payload has neither displayname nor avatar_url")
                await it.set_profile(user, profile)
                return {}
            case CreateRoom():
                spec = _room_spec(action)
                created = await it.create_room(user, spec)
                result: dict[str, Any] = {"room_id": created}
                if spec.alias_localpart:
                    result["alias"] = f"#{spec.alias_localpart}:{user.partition(':')[2]}"
                return result

    async def _fail(
        self,
        conn: asyncpg.Connection,
        lease: _Lease,
        row: OutboxRow,
        exc: Exception,
        room_id: str | None,
    ) -> _Failed:
        """Record a failure of ``row`` (while the lease holds); say how long its lane waits,
        or report it dead."""
        kind, error = classify(exc), error_text(exc)
        settings = self._settings
        refusal = matrix_error(exc)
        errcode = refusal.errcode if refusal is not None else None
        if kind is FailureKind.RATE_LIMITED:
            wait_ms = retry_after_ms(exc)
            wait = backoff(settings, row.attempts + 1) if wait_ms is None else wait_ms / 1000
            wait = min(wait, settings.max_retry_delay)
            if self._metrics is not None:
                self._metrics.outbox_result("rate_limited", errcode)
                self._metrics.rate_limited_seconds.inc(wait)
            log.info(
                "Outbox row %d (%s in %s) rate limited; lane waits %.3f s",
                row.id,
                row.kind,
                row.lane,
                wait,
            )
            async with conn.transaction():
                await self._renew(conn, lease)
                await self._store.record_failure(conn, row.id, row.attempts, error)
            return _Failed(wait)
        attempts = row.attempts + 1
        if kind is FailureKind.TRANSIENT and attempts < settings.max_attempts:
            wait = backoff(settings, attempts)
            if self._metrics is not None:
                self._metrics.outbox_result("retry", errcode)
            log.warning(
                "Outbox row %d (%s in %s) failed (attempt %d of %d), retry in %.1f s: %s",
                row.id,
                row.kind,
                row.lane,
                attempts,
                settings.max_attempts,
                wait,
                short_error(exc),
            )
            async with conn.transaction():
                await self._renew(conn, lease)
                await self._store.record_failure(conn, row.id, attempts, error)
            return _Failed(wait)
        log.error(
            "Dead-lettering outbox row %d (%s as %s in %s) after %d attempt(s): %s",
            row.id,
            row.kind,
            row.sender,
            row.lane,
            attempts,
            short_error(exc),
            exc_info=exc,
        )
        report = self._report(row, room_id, exc)
        async with conn.transaction():
            await self._renew(conn, lease)
            await self._store.dead_letter(conn, row.id, attempts, error, room_id)
            if report is not None:
                await self._store.enqueue_many(conn, [report])
        if self._metrics is not None:
            self._metrics.outbox_result("dead", errcode)
            self._metrics.dead_letters.labels("outbox", kind.name.lower()).inc()
        return _Failed(None, reported=report is not None)

    def _report(self, row: OutboxRow, room_id: str | None, exc: Exception) -> OutboxItem | None:
        """A notice from the bot telling the room what failed; none for a failed report."""
        if room_id is None or (isinstance(row.action, Send) and row.action.report_of is not None):
            return None
        body = f"⚠️ The bridge could not {describe(row)}: {short_error(exc)}"
        return OutboxItem(
            lane=row.lane,
            sender=self._intents.bot_mxid,
            action=Send(
                room_id=room_id,
                event_type="m.room.message",
                content={"msgtype": "m.notice", "body": body, "m.mentions": {}},
                report_of=row.id,
            ),
        )
