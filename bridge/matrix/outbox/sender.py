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
"""

from __future__ import annotations

import asyncio
import copy
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
from ..bridging.portal_store import PortalStore
from ..inbox.processor import describe_error
from ..workers import WorkerPool
from .intents import Intents, RoomSpec, retry_after_ms
from .lane_store import LaneClaim, OutboxLaneStore
from .store import OutboxItem, OutboxRow, OutboxStore

log = logging.getLogger(__name__)

#: Lane prefix of a conversation whose portal room may not exist yet.
CONVERSATION_LANE_PREFIX = "conv:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_REPORTED_ERROR = 300


class Action(enum.StrEnum):
    """The outbox's ``action`` column. Payloads are documented on :class:`OutboxSender`."""

    SEND = "send"
    REDACT = "redact"
    STATE = "state"
    INVITE = "invite"
    JOIN = "join"
    LEAVE = "leave"
    KICK = "kick"
    PROFILE = "profile"
    CREATE_ROOM = "create_room"


_ROOMLESS = frozenset({Action.PROFILE, Action.CREATE_ROOM})


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


class LeaseLost(Exception):
    """The lane's lease expired and another sender took the lane over."""


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
    p = row.payload
    match row.action:
        case Action.SEND if p.get("event_type") == "m.room.message":
            return f"deliver a message from {row.sender}"
        case Action.SEND:
            return f"deliver a {p.get('event_type')} event from {row.sender}"
        case Action.REDACT:
            return f"redact an event for {row.sender}"
        case Action.STATE:
            return f"update {p.get('event_type')} in this room"
        case Action.INVITE:
            return f"invite {p.get('user_id')}"
        case Action.JOIN:
            return f"add {row.sender} to this room"
        case Action.LEAVE:
            return f"remove {row.sender} from this room"
        case Action.KICK:
            return f"remove {p.get('user_id')} from this room"
    return f"do {row.action} as {row.sender}"


# --- payload fields ---------------------------------------------------------------------------


def _str(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"payload.{key} must be a non-empty string")
    return value


def _opt_str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidPayload(f"payload.{key} must be a string")
    return value


def _obj(payload: dict[str, Any], key: str, *, required: bool = True) -> dict[str, Any] | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise InvalidPayload(f"payload.{key} must be an object")
    return value


def _room_spec(payload: dict[str, Any]) -> RoomSpec:
    invite = payload.get("invite", [])
    if not isinstance(invite, list) or not all(isinstance(u, str) for u in invite):
        raise InvalidPayload("payload.invite must be a list of user ids")
    is_direct = payload.get("is_direct", False)
    if not isinstance(is_direct, bool):
        raise InvalidPayload("payload.is_direct must be a boolean")
    preset = _opt_str(payload, "preset") or "private_chat"
    if preset not in ("private_chat", "public_chat", "trusted_private_chat"):
        raise InvalidPayload("payload.preset is not a createRoom preset")
    initial_state = payload.get("initial_state")
    if initial_state is not None and not isinstance(initial_state, list):
        raise InvalidPayload("payload.initial_state must be a list")
    return RoomSpec(
        name=_opt_str(payload, "name"),
        topic=_opt_str(payload, "topic"),
        alias_localpart=_opt_str(payload, "alias_localpart"),
        invite=list(invite),
        is_direct=is_direct,
        preset=preset,
        power_levels=_obj(payload, "power_levels", required=False),
        initial_state=initial_state,
        creation_content=_obj(payload, "creation_content", required=False),
        room_version=_opt_str(payload, "room_version"),
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

    Actions (``sender`` acts; ``room_id`` may be left out in a ``conv:<uuid>`` lane, where the
    conversation's portal room is looked up when the row is sent):

    - ``send`` ``{room_id, event_type, content}`` → ``{event_id, room_id}``
    - ``redact`` ``{room_id, event_id, reason?}`` → ``{event_id, room_id}``
    - ``state`` ``{room_id, event_type, state_key, content}`` → ``{event_id, room_id}``
    - ``invite`` / ``kick`` ``{room_id, user_id, reason?}``; ``join`` ``{room_id}``;
      ``leave`` ``{room_id, reason?}`` (also declines an invite) → ``{room_id}``
    - ``profile`` ``{displayname?, avatar_url?}`` (the sender's own; null clears) → ``{}``
    - ``create_room`` ``{conversation_id?, name?, topic?, alias_localpart?, invite, is_direct,
      power_levels?, preset?, initial_state?, creation_content?, room_version?}`` →
      ``{room_id, alias?}``; with ``conversation_id`` the ``portal`` row is recorded in the
      transaction marking the row sent, and a conversation that already has a portal gets no
      second room (without it, the room is just made: ``on_sent`` can record what it is for).

    Any payload may carry ``refs``: ``{"<JSON pointer into the payload>": <outbox id>}``, each
    replaced at send time by that row's ``event_id`` (e.g. ``{"/event_id": 41}`` to redact
    what row 41 sent, or ``{"/content/m.relates_to/event_id": 41}`` to edit it).

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
        owner: str = "bridge",
    ) -> None:
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
            if row.action not in _ROOMLESS:
                room_id = await self._room_of(conn, row)
            payload = await self._resolve_refs(conn, row)
            portal: uuid.UUID | None = None
            if row.action == Action.CREATE_ROOM and "conversation_id" in payload:
                portal = self._conversation_id(payload)
                existing = await self._portals.get_portal_by_conversation(conn, portal)
                if existing is not None:
                    log.info("Conversation %s already has portal %s", portal, existing.room_id)
                    await self._record_sent(
                        conn, lease, row, {"room_id": existing.room_id}, None
                    )
                    return None
            async with asyncio.timeout(self._settings.request_timeout):
                result = await self._perform(row, room_id, payload)
            await self._record_sent(conn, lease, row, result, portal)
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
        log.debug("Outbox row %d (%s in %s) sent: %s", row.id, row.action, row.lane, result)

    @staticmethod
    def _conversation_id(payload: dict[str, Any]) -> uuid.UUID:
        try:
            return uuid.UUID(_str(payload, "conversation_id"))
        except ValueError:
            raise InvalidPayload("payload.conversation_id must be a UUID") from None

    async def _room_of(self, conn: asyncpg.Connection, row: OutboxRow) -> str:
        if "room_id" in row.payload:
            return _str(row.payload, "room_id")
        if not row.lane.startswith(CONVERSATION_LANE_PREFIX):
            raise InvalidPayload("payload.room_id is required outside a conversation lane")
        try:
            conversation_id = uuid.UUID(row.lane.removeprefix(CONVERSATION_LANE_PREFIX))
        except ValueError:
            raise InvalidPayload(f"lane {row.lane!r} names no conversation") from None
        portal = await self._portals.get_portal_by_conversation(conn, conversation_id)
        if portal is not None:
            return portal.room_id
        if await self._store.has_dead_row(conn, row.lane, Action.CREATE_ROOM):
            raise Undeliverable(f"the portal room of conversation {conversation_id} was never made")
        raise NotReady(f"conversation {conversation_id} has no portal room yet")

    async def _resolve_refs(self, conn: asyncpg.Connection, row: OutboxRow) -> dict[str, Any]:
        refs = row.payload.get("refs")
        if refs is None:
            return row.payload
        if not isinstance(refs, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in refs.values()
        ):
            raise InvalidPayload("payload.refs must map JSON pointers to outbox ids")
        found = await self._store.get_results(conn, list(refs.values()))
        payload = copy.deepcopy({k: v for k, v in row.payload.items() if k != "refs"})
        for pointer, ref_id in refs.items():
            ref = found.get(ref_id)
            if ref is None or ref.state == "dead":
                raise Undeliverable(f"it refers to outbox row {ref_id}, which was not sent")
            if ref.state != "sent":
                raise NotReady(f"waiting for outbox row {ref_id}")
            event_id = (ref.result or {}).get("event_id")
            if not isinstance(event_id, str):
                raise Undeliverable(f"outbox row {ref_id} made no event")
            _set_pointer(payload, pointer, event_id)
        return payload

    async def _perform(
        self, row: OutboxRow, room_id: str | None, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Do the row's action on the homeserver; return what to record as its result."""
        it, user = self._intents, row.sender
        room = room_id or ""
        match row.action:
            case Action.SEND:
                event_id = await it.send(
                    user,
                    room,
                    _str(payload, "event_type"),
                    _obj(payload, "content") or {},
                    matrix_txn_id(row),
                )
                return {"event_id": event_id, "room_id": room}
            case Action.REDACT:
                event_id = await it.redact(
                    user,
                    room,
                    _str(payload, "event_id"),
                    _opt_str(payload, "reason"),
                    matrix_txn_id(row),
                )
                return {"event_id": event_id, "room_id": room}
            case Action.STATE:
                state_key = payload.get("state_key", "")
                if not isinstance(state_key, str):
                    raise InvalidPayload("payload.state_key must be a string")
                event_id = await it.set_state(
                    user,
                    room,
                    _str(payload, "event_type"),
                    state_key,
                    _obj(payload, "content") or {},
                )
                return {"event_id": event_id, "room_id": room}
            case Action.INVITE:
                await it.invite(user, room, _str(payload, "user_id"), _opt_str(payload, "reason"))
                return {"room_id": room}
            case Action.JOIN:
                return {"room_id": await it.join(user, room)}
            case Action.LEAVE:
                await it.leave(user, room, _opt_str(payload, "reason"))
                return {"room_id": room}
            case Action.KICK:
                await it.kick(user, room, _str(payload, "user_id"), _opt_str(payload, "reason"))
                return {"room_id": room}
            case Action.PROFILE:
                profile: dict[str, str | None] = {
                    k: _opt_str(payload, k) for k in ("displayname", "avatar_url") if k in payload
                }
                if not profile:
                    raise InvalidPayload("payload has neither displayname nor avatar_url")
                await it.set_profile(user, profile)
                return {}
            case Action.CREATE_ROOM:
                spec = _room_spec(payload)
                created = await it.create_room(user, spec)
                result: dict[str, Any] = {"room_id": created}
                if spec.alias_localpart:
                    result["alias"] = f"#{spec.alias_localpart}:{user.partition(':')[2]}"
                return result
        raise InvalidPayload(f"unknown action {row.action!r}")

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
        kind, error = _classify(exc), _error_text(exc)
        settings = self._settings
        if kind is _Kind.RATE_LIMITED:
            wait_ms = retry_after_ms(exc)
            wait = backoff(settings, row.attempts + 1) if wait_ms is None else wait_ms / 1000
            wait = min(wait, settings.max_retry_delay)
            log.info(
                "Outbox row %d (%s in %s) rate limited; lane waits %.3f s",
                row.id,
                row.action,
                row.lane,
                wait,
            )
            async with conn.transaction():
                await self._renew(conn, lease)
                await self._store.record_failure(conn, row.id, row.attempts, error)
            return _Failed(wait)
        attempts = row.attempts + 1
        if kind is _Kind.TRANSIENT and attempts < settings.max_attempts:
            wait = backoff(settings, attempts)
            log.warning(
                "Outbox row %d (%s in %s) failed (attempt %d of %d), retry in %.1f s: %s",
                row.id,
                row.action,
                row.lane,
                attempts,
                settings.max_attempts,
                wait,
                _short_error(exc),
            )
            async with conn.transaction():
                await self._renew(conn, lease)
                await self._store.record_failure(conn, row.id, attempts, error)
            return _Failed(wait)
        log.error(
            "Dead-lettering outbox row %d (%s as %s in %s) after %d attempt(s): %s",
            row.id,
            row.action,
            row.sender,
            row.lane,
            attempts,
            _short_error(exc),
        )
        report = self._report(row, room_id, exc)
        async with conn.transaction():
            await self._renew(conn, lease)
            await self._store.dead_letter(conn, row.id, attempts, error, room_id)
            if report is not None:
                await self._store.enqueue_many(conn, [report])
        return _Failed(None, reported=report is not None)

    def _report(self, row: OutboxRow, room_id: str | None, exc: Exception) -> OutboxItem | None:
        """A notice from the bot telling the room what failed; none for a failed report."""
        if room_id is None or "report_of" in row.payload:
            return None
        body = f"⚠️ The bridge could not {_describe(row)}: {_short_error(exc)}"
        return OutboxItem(
            lane=row.lane,
            sender=self._intents.bot_mxid,
            action=Action.SEND.value,
            payload={
                "room_id": room_id,
                "event_type": "m.room.message",
                "content": {"msgtype": "m.notice", "body": body, "m.mentions": {}},
                "report_of": row.id,
            },
        )
