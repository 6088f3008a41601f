"""The outbox sender: Matrix side effects, sent in order per lane and retried durably.

Domain code enqueues rows (:class:`~bridge.matrix.outbox.store.OutboxStore`) in the DB
transaction of its change, then calls :meth:`OutboxSender.wake`. A worker claims a lane (an
advisory lock held by its DB transaction), sends a small batch of the lane's rows and marks
each one sent in that same transaction. If the process dies after the homeserver accepted a
row but before the commit, the row is sent again with the same Matrix transaction id
(:func:`matrix_txn_id`), and the homeserver answers with the event it already made.

Over 400 lines because it is one mechanism whose parts share the lane's DB transaction: claim,
resolve references, perform, classify a failure, retry or dead-letter and report.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from mautrix.errors import IntentError, MatrixRequestError

from ...config import OutboxConfig
from ...db.database import Database
from ...metrics import Metrics
from ..bridging.portal_store import PortalStore
from ..inbox.processor import describe_error
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
from .intents import Intents, RoomSpec, retry_after_ms
from .store import OutboxItem, OutboxRow, OutboxStore

log = logging.getLogger(__name__)

#: Lane prefix of a conversation whose portal room may not exist yet.
CONVERSATION_LANE_PREFIX = "conv:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_REPORTED_ERROR = 300


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


class InvalidPayload(Exception):
    """The row cannot be sent as written (unknown action, missing or mistyped field)."""


class Undeliverable(Exception):
    """The row can never be sent (what it depends on was given up on)."""


class NotReady(Exception):
    """What the row depends on is not there yet (its portal room, a referenced event)."""


class _Kind(enum.Enum):
    RATE_LIMITED = "rate limited"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


def _matrix_error(exc: BaseException) -> MatrixRequestError | None:
    if isinstance(exc, MatrixRequestError):
        return exc
    if isinstance(exc, IntentError) and isinstance(exc.__cause__, MatrixRequestError):
        return exc.__cause__
    return None


def _classify(exc: BaseException) -> _Kind:
    error = _matrix_error(exc)
    if error is not None:
        if error.http_status == 429:
            return _Kind.RATE_LIMITED
        # 401: the as_token is refused, a configuration problem for every row, not this one.
        if 400 <= error.http_status < 500 and error.http_status not in (401, 408):
            return _Kind.PERMANENT
        return _Kind.TRANSIENT
    if isinstance(exc, InvalidPayload | Undeliverable | IntentError):
        return _Kind.PERMANENT
    # Connection errors, timeouts, odd responses, NotReady, and anything unforeseen.
    return _Kind.TRANSIENT


def _error_text(exc: BaseException) -> str:
    error = _matrix_error(exc)
    if error is not None:
        return f"HTTP {error.http_status} {error.errcode or ''}: {error.message or ''}".strip()
    if isinstance(exc, InvalidPayload | Undeliverable | NotReady):
        return f"{type(exc).__name__}: {exc}"
    return describe_error(exc)


def _short_error(exc: BaseException) -> str:
    error = _matrix_error(exc)
    if error is not None:
        text = f"{error.errcode or f'HTTP {error.http_status}'}: {error.message or 'refused'}"
    else:
        text = str(exc) or type(exc).__name__
    return text[:_MAX_REPORTED_ERROR]


def _describe(row: OutboxRow) -> str:
    """What the row meant to do, for the notice reporting its failure."""
    match row.action:
        case Send(event_type="m.room.message"):
            return f"deliver a message from {row.sender}"
        case Send(event_type=event_type):
            return f"deliver a {event_type} event from {row.sender}"
        case Redact():
            return f"redact an event for {row.sender}"
        case SetState(event_type=event_type):
            return f"update {event_type} in this room"
        case Invite(user_id=user_id):
            return f"invite {user_id}"
        case Join():
            return f"add {row.sender} to this room"
        case Leave():
            return f"remove {row.sender} from this room"
        case Kick(user_id=user_id):
            return f"remove {user_id} from this room"
    return f"do {row.kind} as {row.sender}"


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
    report: OutboxItem | None = None


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
    ) -> None:
        self._metrics = metrics
        self._db = db
        self._store = store
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
        async with self._db.acquire() as conn, conn.transaction():
            claimed = await self._store.claim_lane(conn)
            if claimed is None:
                return False
            lane, seq = claimed
            rows = await self._store.list_pending(conn, lane, self._settings.batch_size)
            retry_in, reports = await self._deliver(conn, rows)
            # Lane and report writes come last: they lock the lane's row, which enqueuers
            # of this lane would otherwise wait on while the batch talks to the homeserver.
            if reports:
                await self._store.enqueue_many(conn, reports)
            if retry_in is not None:
                await self._store.postpone_lane(conn, lane, retry_in)
            elif reports or len(rows) == self._settings.batch_size:
                await self._store.postpone_lane(conn, lane, 0)
            elif not await self._store.release_lane(conn, lane, seq):
                await self._store.postpone_lane(conn, lane, 0)
        return True

    async def drain(self) -> int:
        """Send until no lane is due; return the batches run. For tools and tests."""
        batches = 0
        while await self.run_once():
            batches += 1
        return batches

    async def _deliver(
        self, conn: asyncpg.Connection, rows: list[OutboxRow]
    ) -> tuple[float | None, list[OutboxItem]]:
        """Send rows in order until one must be retried; return its wait and failure reports."""
        reports: list[OutboxItem] = []
        for row in rows:
            if self._stopping:
                break  # the rest stays pending; the lane is not released while it has rows
            failed = await self._deliver_row(conn, row)
            if failed is None:
                continue
            if failed.report is not None:
                reports.append(failed.report)
            if failed.retry_in is not None:
                return failed.retry_in, reports
        return None, reports

    async def _deliver_row(self, conn: asyncpg.Connection, row: OutboxRow) -> _Failed | None:
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
                    await self._record_sent(conn, row, {"room_id": existing.room_id}, None)
                    return None
            async with asyncio.timeout(self._settings.request_timeout):
                result = await self._perform(row, room_id, action)
            await self._record_sent(conn, row, result, portal)
            if self._metrics is not None:
                self._metrics.outbox_result("sent")
            return None
        except Exception as exc:  # every failure is recorded on the row
            return await self._fail(conn, row, exc, room_id)

    async def _record_sent(
        self,
        conn: asyncpg.Connection,
        row: OutboxRow,
        result: dict[str, Any],
        conversation_id: uuid.UUID | None,
    ) -> None:
        async with conn.transaction():  # a savepoint: a failing hook leaves the batch usable
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
        self, conn: asyncpg.Connection, row: OutboxRow, exc: Exception, room_id: str | None
    ) -> _Failed:
        """Record a failure of ``row``; say how long its lane waits, or report it dead."""
        kind, error = _classify(exc), _error_text(exc)
        settings = self._settings
        matrix_error = _matrix_error(exc)
        errcode = matrix_error.errcode if matrix_error is not None else None
        if kind is _Kind.RATE_LIMITED:
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
            await self._store.record_failure(conn, row.id, row.attempts, error)
            return _Failed(wait)
        attempts = row.attempts + 1
        if kind is _Kind.TRANSIENT and attempts < settings.max_attempts:
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
                _short_error(exc),
            )
            await self._store.record_failure(conn, row.id, attempts, error)
            return _Failed(wait)
        log.error(
            "Dead-lettering outbox row %d (%s as %s in %s) after %d attempt(s): %s",
            row.id,
            row.kind,
            row.sender,
            row.lane,
            attempts,
            _short_error(exc),
            exc_info=exc,
        )
        await self._store.dead_letter(conn, row.id, attempts, error, room_id)
        if self._metrics is not None:
            self._metrics.outbox_result("dead", errcode)
            self._metrics.dead_letters.labels("outbox", kind.name.lower()).inc()
        return _Failed(None, self._report(row, room_id, exc))

    def _report(self, row: OutboxRow, room_id: str | None, exc: Exception) -> OutboxItem | None:
        """A notice from the bot telling the room what failed; none for a failed report."""
        if room_id is None or (isinstance(row.action, Send) and row.action.report_of is not None):
            return None
        body = f"⚠️ The bridge could not {_describe(row)}: {_short_error(exc)}"
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
