"""The outbox on a real Postgres, sending over real HTTP to a fake homeserver."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientSession

from bridge.db.database import Database
from bridge.matrix.outbox.actions import (
    CreateRoom,
    Invite,
    Join,
    Kick,
    Leave,
    Redact,
    Send,
    SetProfile,
    SetState,
)
from bridge.matrix.outbox.intents import Intents
from bridge.matrix.outbox.sender import OutboxSender, OutboxSettings, SentHook, conversation_lane
from bridge.matrix.outbox.store import OutboxItem, OutboxRow, OutboxStore
from tests.conftest import AS_TOKEN
from tests.fake_homeserver import FakeHomeserver

BOT = "@_pn_bot:localhost"
GHOST = "@_pn_alice:localhost"
USER = "@bob:localhost"


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn, min_size=1, max_size=6)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession() as client_session:
        yield client_session


class Crash(BaseException):
    """The process dies: nothing after it runs, the DB transaction is rolled back."""


class CrashBeforeCommit(OutboxStore):
    async def mark_sent(
        self, conn: asyncpg.Connection, row_id: int, result: dict[str, Any]
    ) -> None:
        raise Crash


def make_sender(
    db: Database,
    hs: FakeHomeserver,
    session: ClientSession,
    *,
    store: OutboxStore | None = None,
    token: str = AS_TOKEN,
    on_sent: SentHook | None = None,
    **settings: Any,
) -> OutboxSender:
    intents = Intents(session, homeserver_url=hs.url, as_token=token, bot_mxid=BOT)
    tuned = OutboxSettings(
        **(
            {
                "workers": 2,
                "max_attempts": 3,
                "retry_delay": 10.0,
                "max_retry_delay": 60.0,
                "request_timeout": 10.0,
            }
            | settings
        )
    )
    return OutboxSender(db, store or OutboxStore(), intents, tuned, on_sent=on_sent)


def message(room_id: str | None, body: str, sender: str = BOT) -> OutboxItem:
    send = Send(
        room_id=room_id, event_type="m.room.message", content={"msgtype": "m.text", "body": body}
    )
    return OutboxItem(room_id or "", sender, send)


def body_of(item: OutboxItem) -> str:
    assert isinstance(item.action, Send)
    return str(item.action.content["body"])


async def drain(sender: OutboxSender, limit: int = 50) -> int:
    """Run batches until no lane is due; fail (rather than hang) if that never happens."""
    for batches in range(limit):
        if not await sender.run_once():
            return batches
    pytest.fail(f"the outbox was still busy after {limit} batches")


async def enqueue(db: Database, *items: OutboxItem) -> list[int]:
    async with db.transaction() as conn:
        return await OutboxStore().enqueue_many(conn, items)


async def enqueue_stored(
    db: Database, lane: str, sender: str, kind: str, payload: dict[str, Any]
) -> int:
    """A row as stored by hand (or by an earlier version): any kind, any payload."""
    async with db.transaction() as conn:
        row_id = await conn.fetchval(
            "INSERT INTO outbox (lane, sender, action, payload) VALUES ($1, $2, $3, $4::text::jsonb)"
            " RETURNING id",
            lane,
            sender,
            kind,
            json.dumps(payload),
        )
        await conn.execute(
            "INSERT INTO outbox_lane (lane) VALUES ($1) ON CONFLICT DO NOTHING", lane
        )
    return int(row_id)


async def make_due(conn: asyncpg.Connection) -> None:
    """Skip the back-off without waiting for it."""
    await conn.execute("UPDATE outbox_lane SET not_before = now()")


async def expire_leases(conn: asyncpg.Connection) -> None:
    """Let the time of every lane's lease pass (a leased lane's not_before is its expiry)."""
    leased = await conn.execute(
        "UPDATE outbox_lane SET not_before = now() - interval '1 second' WHERE lease IS NOT NULL"
    )
    assert leased != "UPDATE 0"


async def lane_wait(conn: asyncpg.Connection, lane: str) -> float:
    """Seconds until the lane is due."""
    return float(
        await conn.fetchval(
            "SELECT EXTRACT(EPOCH FROM not_before - now()) FROM outbox_lane WHERE lane = $1", lane
        )
    )


async def row(conn: asyncpg.Connection, row_id: int) -> dict[str, Any]:
    record = await conn.fetchrow(
        "SELECT state, attempts, last_error, result::text AS result, sent_at, payload::text AS"
        " payload FROM outbox WHERE id = $1",
        row_id,
    )
    data = dict(record)
    data["result"] = json.loads(data["result"]) if data["result"] else None
    data["payload"] = json.loads(data["payload"])
    return data


def bodies(hs: FakeHomeserver, room_id: str, event_type: str = "m.room.message") -> list[str]:
    return [e.content["body"] for e in hs.rooms[room_id].timeline(event_type)]


# --- enqueue ----------------------------------------------------------------------------------


async def test_enqueue_joins_the_callers_transaction_and_bumps_the_lane(
    db: Database, conn: asyncpg.Connection
) -> None:
    store = OutboxStore()
    async with db.transaction() as c:
        first = await store.enqueue(c, "!a:localhost", BOT, Join(room_id="!a:localhost"))
        second = await store.enqueue(c, "!a:localhost", BOT, Leave(room_id="!a:localhost"))
    assert second > first
    assert await conn.fetchval("SELECT seq FROM outbox_lane WHERE lane = '!a:localhost'") == 1
    items = [
        OutboxItem(lane, GHOST, Leave(room_id=lane, reason=str(n)))
        for n, lane in enumerate("xyxzx")
    ]
    ids = await enqueue(db, *items)
    assert ids == sorted(ids) and len(ids) == 5
    rows = await conn.fetch(
        "SELECT id, lane, action, payload::text AS p FROM outbox WHERE id = ANY($1) ORDER BY id",
        ids,
    )
    assert [(r["lane"], r["action"], json.loads(r["p"])) for r in rows] == [
        (i.lane, "leave", {"action": "leave", "room_id": i.lane, "reason": str(n)})
        for n, i in enumerate(items)
    ]
    seqs = dict(await conn.fetch("SELECT lane, seq FROM outbox_lane WHERE lane IN ('x','y','z')"))
    assert seqs == {"x": 0, "y": 0, "z": 0}  # one statement: each lane inserted once
    await enqueue(db, OutboxItem("x", GHOST, Join(room_id="x")))
    assert await conn.fetchval("SELECT seq FROM outbox_lane WHERE lane = 'x'") == 1
    with pytest.raises(RuntimeError):
        async with db.transaction() as c:
            await store.enqueue(c, "!gone:localhost", BOT, Join(room_id="!gone:localhost"))
            raise RuntimeError("the domain change failed")
    gone = "!gone:localhost"
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE lane = $1", gone) == 0
    assert await conn.fetchval("SELECT count(*) FROM outbox_lane WHERE lane = $1", gone) == 0


# --- order and parallelism --------------------------------------------------------------------


async def test_lanes_are_delivered_in_order_and_in_parallel(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    rooms = [hs.add_room([BOT]) for _ in range(3)]
    items = [message(rooms[n % 3], f"m{n}") for n in range(30)]
    ids = await enqueue(db, *items[:15])
    ids += await enqueue(db, *items[15:])
    sender = make_sender(db, hs, session, batch_size=4)
    await asyncio.gather(*(drain(sender) for _ in range(3)))
    for room_id in rooms:
        assert bodies(hs, room_id) == [body_of(i) for i in items if i.lane == room_id]
    for row_id, item in zip(ids, items, strict=True):
        sent = await row(conn, row_id)
        assert sent["state"] == "sent" and sent["sent_at"] is not None
        event = next(
            e for e in hs.rooms[item.lane].events if e.event_id == sent["result"]["event_id"]
        )
        assert event.content["body"] == body_of(item)
        assert sent["result"]["room_id"] == item.lane
    txn_ids = [c.path.rsplit("/", 1)[1] for c in hs.calls_to("/send/")]
    assert len(set(txn_ids)) == 30
    assert all(re.fullmatch(r"bridge-outbox-\d+-\d+", t) for t in txn_ids)
    assert await conn.fetchval("SELECT count(*) FROM outbox_lane") == 0


async def test_a_stuck_lane_does_not_hold_up_the_others(
    db: Database, hs: FakeHomeserver, session: ClientSession
) -> None:
    slow, fast = hs.add_room([BOT]), hs.add_room([BOT])
    release = hs.hold(f"/rooms/{slow}/send/")
    await enqueue(db, message(slow, "slow"))  # due first: a lone worker would take it first
    await enqueue(db, *(message(fast, f"fast {n}") for n in range(5)))
    sender = make_sender(db, hs, session, workers=2)
    sender.start()
    try:
        await hs.wait_for(lambda: len(bodies(hs, fast)) == 5 and len(hs.calls_to(slow)) == 1)
        assert bodies(hs, slow) == []
        release.set()
        await hs.wait_for(lambda: bodies(hs, slow) == ["slow"])
    finally:
        await sender.stop()


class SignalsIdle(OutboxStore):
    """Tells when a worker found nothing to do and is about to wait."""

    def __init__(self) -> None:
        self.idle = asyncio.Event()

    async def seconds_until_due(self, conn: asyncpg.Connection) -> float | None:
        due = await super().seconds_until_due(conn)
        self.idle.set()  # the worker now waits as long as ``due`` says, or until woken
        return due


async def test_seconds_until_due(db: Database, conn: asyncpg.Connection) -> None:
    store = OutboxStore()
    assert await store.seconds_until_due(conn) is None  # nothing waiting
    await enqueue(db, message("!a:localhost", "x"))
    assert await store.seconds_until_due(conn) == 0.0
    await conn.execute("UPDATE outbox_lane SET not_before = now() + interval '90 seconds'")
    assert 89.0 < (await store.seconds_until_due(conn) or 0) <= 90.0


async def test_an_idle_worker_sends_what_is_enqueued_when_woken(
    db: Database, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    store = SignalsIdle()
    # Polling every 10 minutes: only the wake-up can get the row out within the test.
    sender = make_sender(db, hs, session, store=store, workers=1, poll_interval=600.0)
    sender.start()
    try:
        await asyncio.wait_for(store.idle.wait(), 10)
        await enqueue(db, message(room_id, "hello"))
        sender.wake()
        await hs.wait_for(lambda: bodies(hs, room_id) == ["hello"])
    finally:
        await sender.stop()


# --- idempotency ------------------------------------------------------------------------------


async def test_a_resend_after_a_crash_gets_the_same_event(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    [row_id] = await enqueue(db, message(room_id, "once"))
    with pytest.raises(Crash):
        await make_sender(db, hs, session, store=CrashBeforeCommit()).run_once()
    assert (await row(conn, row_id))["state"] == "pending"  # the mark was rolled back
    assert len(hs.calls_to("/send/")) == 1
    assert await drain(make_sender(db, hs, session)) == 0  # the dead sender's lease holds
    await expire_leases(conn)
    await drain(make_sender(db, hs, session))
    first, second = hs.calls_to("/send/")
    assert first.path == second.path  # same transaction id
    assert (first.status, second.status) == (200, 200)
    [event] = hs.rooms[room_id].timeline()
    sent = await row(conn, row_id)
    assert (sent["state"], sent["attempts"], sent["result"]["event_id"]) == (
        "sent",
        0,
        event.event_id,
    )


async def test_a_request_timing_out_is_retried_without_a_duplicate(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    release = hs.hold_response("/send/")  # the event is made, the answer does not come back
    [row_id] = await enqueue(db, message(room_id, "slow"))
    sender = make_sender(db, hs, session, request_timeout=0.2)
    await sender.run_once()
    failed = await row(conn, row_id)
    assert (failed["state"], failed["attempts"]) == ("pending", 1)
    assert "TimeoutError" in failed["last_error"]
    assert len(hs.rooms[room_id].timeline()) == 1
    release.set()
    await make_due(conn)
    await drain(sender)
    assert len(hs.calls_to("/send/")) == 2
    [event] = hs.rooms[room_id].timeline()
    assert (await row(conn, row_id))["result"]["event_id"] == event.event_id


# --- failures ---------------------------------------------------------------------------------


async def test_rate_limit_postpones_the_lane_by_retry_after(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    hs.fail("/send/", status=429, errcode="M_LIMIT_EXCEEDED", retry_after_ms=7250)
    first, second = await enqueue(db, message(room_id, "1"), message(room_id, "2"))
    sender = make_sender(db, hs, session)  # retry_delay 10 s: distinguishable from 7.25 s
    assert await sender.run_once() is True
    limited = await row(conn, first)
    assert (limited["state"], limited["attempts"]) == ("pending", 0)  # not counted
    assert "M_LIMIT_EXCEEDED" in limited["last_error"]
    assert (await row(conn, second))["state"] == "pending"  # order: waits behind the first
    assert 6.5 < await lane_wait(conn, room_id) <= 7.25
    assert await sender.run_once() is False  # not due yet
    await make_due(conn)
    await drain(sender)
    assert bodies(hs, room_id) == ["1", "2"]
    assert len(hs.calls_to("/send/")) == 3


async def test_an_absurd_retry_after_is_capped(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    hs.fail("/send/", status=429, errcode="M_LIMIT_EXCEEDED", retry_after_ms=86_400_000)
    await enqueue(db, message(room_id, "1"))
    await make_sender(db, hs, session, max_retry_delay=45.0).run_once()
    assert 44.0 < await lane_wait(conn, room_id) <= 45.0


async def test_server_errors_back_off_exponentially_then_succeed(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    hs.fail("/send/", status=500, errcode="M_UNKNOWN", times=1)
    hs.fail("/send/", status=502, errcode="M_UNKNOWN", times=2)  # mautrix would retry a 502
    first, second = await enqueue(db, message(room_id, "1"), message(room_id, "2"))
    sender = make_sender(db, hs, session, retry_delay=10.0, max_retry_delay=15.0, max_attempts=5)
    waits = []
    for attempt in (1, 2, 3):
        await drain(sender)
        assert len(hs.calls_to("/send/")) == attempt  # one request per try, no hidden retries
        failed = await row(conn, first)
        assert (failed["state"], failed["attempts"]) == ("pending", attempt)
        assert (await row(conn, second))["state"] == "pending"
        waits.append(await lane_wait(conn, room_id))
        await make_due(conn)
    assert 9.0 < waits[0] <= 10.0 and 14.0 < waits[1] <= 15.0 and 14.0 < waits[2] <= 15.0
    assert "HTTP 502" in (await row(conn, first))["last_error"]
    await drain(sender)
    assert bodies(hs, room_id) == ["1", "2"]
    assert (await row(conn, first))["state"] == "sent"


async def test_giving_up_after_max_attempts_dead_letters_and_reports(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT, GHOST])
    hs.registered.add(GHOST)
    hs.fail("/send/", status=503, errcode="M_UNKNOWN", times=None, user_id=GHOST)
    [row_id] = await enqueue(db, message(room_id, "lost", sender=GHOST))
    sender = make_sender(db, hs, session, max_attempts=2)
    await drain(sender)
    assert (await row(conn, row_id))["attempts"] == 1
    await make_due(conn)
    await drain(sender)
    dead = await row(conn, row_id)
    assert (dead["state"], dead["attempts"]) == ("dead", 2)
    letter = await conn.fetchrow("SELECT attempts, error FROM dead_letter")
    assert letter["attempts"] == 2 and "HTTP 503" in letter["error"]
    [notice] = hs.rooms[room_id].timeline()
    assert notice.sender == BOT and notice.content["msgtype"] == "m.notice"
    assert GHOST in notice.content["body"] and "M_UNKNOWN" in notice.content["body"]


async def test_forbidden_is_dead_lettered_at_once_and_reported_in_the_room(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT, GHOST])
    hs.registered.add(GHOST)
    hs.fail(
        "/send/",
        status=403,
        errcode="M_FORBIDDEN",
        error="You may not post here",
        times=None,
        user_id=GHOST,
    )
    failing, after = await enqueue(
        db, message(room_id, "refused", sender=GHOST), message(room_id, "next")
    )
    await drain(make_sender(db, hs, session))
    dead = await row(conn, failing)
    assert (dead["state"], dead["attempts"]) == ("dead", 1)
    assert "M_FORBIDDEN" in dead["last_error"]
    letter = await conn.fetchrow(
        "SELECT source, dedupe_key, room_id, attempts, error, payload::text AS payload"
        " FROM dead_letter"
    )
    assert (letter["source"], letter["dedupe_key"], letter["room_id"], letter["attempts"]) == (
        "outbox",
        f"outbox:{failing}",
        room_id,
        1,
    )
    assert "HTTP 403 M_FORBIDDEN: You may not post here" in letter["error"]
    assert json.loads(letter["payload"]) == {
        "outbox_id": failing,
        "lane": room_id,
        "sender": GHOST,
        "action": "send",
        "payload": {
            "action": "send",
            "room_id": room_id,
            "event_type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "refused"},
        },
    }
    assert (await row(conn, after))["state"] == "sent"  # the lane went on
    report = await conn.fetchrow(
        "SELECT id, sender, state, payload::text AS payload FROM outbox WHERE id > $1", after
    )
    assert (report["sender"], report["state"]) == (BOT, "sent")
    assert json.loads(report["payload"])["report_of"] == failing
    timeline = hs.rooms[room_id].timeline()
    assert [e.content["msgtype"] for e in timeline] == ["m.text", "m.notice"]
    notice = timeline[1].content
    assert notice["body"].startswith(f"⚠️ The bridge could not deliver a message from {GHOST}")
    assert "M_FORBIDDEN: You may not post here" in notice["body"]
    assert notice["m.mentions"] == {}
    # Refused: the ghost (re)joined, then was refused again; no more than that.
    assert len(hs.calls_to("/send/", "PUT")) == 4  # 2 refused tries, "next", the notice
    assert await conn.fetchval("SELECT count(*) FROM outbox_lane") == 0


async def test_a_failing_report_is_not_reported_again(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    hs.fail("/send/", status=403, errcode="M_FORBIDDEN", times=None)
    [row_id] = await enqueue(db, message(room_id, "refused"))
    await drain(make_sender(db, hs, session))
    states = [r["state"] for r in await conn.fetch("SELECT state FROM outbox ORDER BY id")]
    assert states == ["dead", "dead"]  # the row and its report, nothing more
    keys = [r["dedupe_key"] for r in await conn.fetch("SELECT dedupe_key FROM dead_letter")]
    assert sorted(keys) == [f"outbox:{row_id}", f"outbox:{row_id + 1}"]
    assert await conn.fetchval("SELECT count(*) FROM outbox_lane") == 0


async def test_a_malformed_row_is_dead_lettered_at_once(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    bad = await enqueue_stored(db, room_id, BOT, "send", {"room_id": room_id, "content": {}})
    unknown = await enqueue_stored(db, room_id, BOT, "teleport", {"room_id": room_id})
    typo = await enqueue_stored(db, room_id, BOT, "invite", {"room_id": room_id, "userid": USER})
    empty = await enqueue_stored(db, room_id, BOT, "kick", {"room_id": room_id, "user_id": ""})
    [good] = await enqueue(db, message(room_id, "fine"))
    await drain(make_sender(db, hs, session))
    assert "missing required field `event_type`" in (await row(conn, bad))["last_error"]
    assert "unknown action 'teleport'" in (await row(conn, unknown))["last_error"]
    assert "unknown field `userid`" in (await row(conn, typo))["last_error"]
    assert "length >= 1 - at `payload.user_id`" in (await row(conn, empty))["last_error"]
    assert {(await row(conn, i))["state"] for i in (bad, unknown, typo, empty)} == {"dead"}
    assert (await row(conn, good))["state"] == "sent"
    assert len(bodies(hs, room_id, "m.room.message")) == 5  # "fine" and four reports
    assert hs.calls_to("/invite") == hs.calls_to("/kick") == []


async def test_a_refused_token_is_retried_not_dead_lettered(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    [row_id] = await enqueue(db, message(room_id, "hi"))
    await drain(make_sender(db, hs, session, token="not-the-token"))
    failed = await row(conn, row_id)
    assert (failed["state"], failed["attempts"]) == ("pending", 1)
    assert "M_UNKNOWN_TOKEN" in failed["last_error"]
    assert hs.violations and all("wrong token" in v for v in hs.violations)
    hs.violations.clear()


# --- ghosts and rooms -------------------------------------------------------------------------


async def test_a_ghost_is_registered_before_its_first_action(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT], invited=[GHOST])
    await enqueue(
        db,
        OutboxItem(room_id, GHOST, Join(room_id=room_id)),
        message(room_id, "hi", sender=GHOST),
        OutboxItem(f"profile:{GHOST}", GHOST, SetProfile(displayname="Alice")),
    )
    await drain(make_sender(db, hs, session))
    ghost_calls = [c for c in hs.calls if c.user_id == GHOST]
    register, *rest = ghost_calls
    assert (register.method, register.path, register.status) == (
        "POST",
        "/_matrix/client/v3/register",
        200,
    )
    assert register.body["type"] == "m.login.application_service"
    assert register.body["username"] == "_pn_alice"
    assert not [c for c in rest if c.path.endswith("/register")]
    assert all(c.status == 200 for c in rest)
    assert hs.rooms[room_id].members[GHOST] == "join"
    assert bodies(hs, room_id) == ["hi"] and hs.rooms[room_id].timeline()[0].sender == GHOST
    assert hs.profiles[GHOST] == {"displayname": "Alice"}
    # After a restart the ghost is registered again: M_USER_IN_USE is fine.
    await enqueue(db, message(room_id, "again", sender=GHOST))
    await drain(make_sender(db, hs, session))
    assert hs.calls_to("/register")[-1].status == 400
    assert bodies(hs, room_id) == ["hi", "again"]


async def test_a_ghost_that_is_not_in_the_room_joins_and_sends(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])  # invite-only, the ghost was never invited
    hs.registered.add(GHOST)
    [row_id] = await enqueue(db, message(room_id, "hello", sender=GHOST))
    await drain(make_sender(db, hs, session))
    assert (await row(conn, row_id))["state"] == "sent"
    assert hs.rooms[room_id].members[GHOST] == "join"
    [event] = hs.rooms[room_id].timeline()
    assert event.sender == GHOST and event.content["body"] == "hello"
    invite = hs.calls_to(f"/rooms/{room_id}/invite")[0]
    assert invite.user_id == BOT and invite.body["user_id"] == GHOST


async def test_create_room_then_send_in_a_conversation_lane(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    conversation = uuid.uuid4()
    lane = conversation_lane(conversation)
    levels = {"users": {BOT: 100, GHOST: 50}}
    create, join, send = await enqueue(
        db,
        OutboxItem(
            lane,
            BOT,
            CreateRoom(
                conversation_id=str(conversation),
                name="Team",
                topic="Plans",
                alias_localpart=f"_pn_conv_{conversation}",
                invite=[GHOST, USER],
                is_direct=False,
                power_levels=levels,
            ),
        ),
        OutboxItem(lane, GHOST, Join()),
        OutboxItem(
            lane,
            GHOST,
            Send(event_type="m.room.message", content={"msgtype": "m.text", "body": "hi all"}),
        ),
    )
    seen: list[tuple[int, dict[str, Any]]] = []

    async def on_sent(c: asyncpg.Connection, sent: OutboxRow, result: dict[str, Any]) -> None:
        seen.append((sent.id, result))

    await drain(make_sender(db, hs, session, on_sent=on_sent))
    portal = await conn.fetchrow(
        "SELECT room_id, alias FROM portal WHERE conversation_id = $1", conversation
    )
    room_id = portal["room_id"]
    assert portal["alias"] == f"#_pn_conv_{conversation}:localhost"
    assert hs.aliases[portal["alias"]] == room_id
    [call] = hs.calls_to("/createRoom")
    assert call.user_id == BOT
    assert {
        k: call.body[k]
        for k in (
            "name",
            "topic",
            "room_alias_name",
            "invite",
            "is_direct",
            "power_level_content_override",
        )
    } == {
        "name": "Team",
        "topic": "Plans",
        "room_alias_name": f"_pn_conv_{conversation}",
        "invite": [GHOST, USER],
        "is_direct": False,
        # The fake serves room version 12, where the creator's power is implied, not listed.
        "power_level_content_override": {"users": {GHOST: 50}},
    }
    room = hs.rooms[room_id]
    assert room.members == {BOT: "join", GHOST: "join", USER: "invite"}
    [event] = room.timeline()
    assert (event.sender, event.content["body"]) == (GHOST, "hi all")
    assert (await row(conn, create))["result"] == {"room_id": room_id, "alias": portal["alias"]}
    assert (await row(conn, send))["result"] == {"event_id": event.event_id, "room_id": room_id}
    assert [row_id for row_id, _ in seen] == [create, join, send]


async def test_create_room_without_a_conversation_just_makes_the_room(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    seen: list[dict[str, Any]] = []

    async def on_sent(c: asyncpg.Connection, sent: OutboxRow, result: dict[str, Any]) -> None:
        seen.append(result)

    [create] = await enqueue(
        db,
        OutboxItem(
            f"management:{USER}",
            BOT,
            CreateRoom(management_for=USER, invite=[USER], is_direct=True, name="Bridge"),
        ),
    )
    await drain(make_sender(db, hs, session, on_sent=on_sent))
    [room_id] = hs.rooms
    assert hs.rooms[room_id].is_direct and hs.rooms[room_id].members[USER] == "invite"
    assert (await row(conn, create))["result"] == {"room_id": room_id} == seen[0]
    assert await conn.fetchval("SELECT count(*) FROM portal") == 0


async def test_a_conversation_lane_waits_for_its_portal(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    conversation = uuid.uuid4()
    lane = conversation_lane(conversation)
    [row_id] = await enqueue(
        db,
        OutboxItem(
            lane,
            BOT,
            Send(event_type="m.room.message", content={"msgtype": "m.text", "body": "early"}),
        ),
    )
    sender = make_sender(db, hs, session)
    await drain(sender)
    waiting = await row(conn, row_id)
    assert (waiting["state"], waiting["attempts"]) == ("pending", 1)
    assert "has no portal room yet" in waiting["last_error"]
    assert hs.calls == []
    room_id = hs.add_room([BOT])  # made meanwhile, e.g. by a room alias query
    await conn.execute(
        "INSERT INTO portal (room_id, conversation_id) VALUES ($1, $2)", room_id, conversation
    )
    await make_due(conn)
    await drain(sender)
    assert bodies(hs, room_id) == ["early"]


async def test_a_conversation_lane_gives_up_when_its_room_was_not_made(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    conversation = uuid.uuid4()
    lane = conversation_lane(conversation)
    hs.fail("/createRoom", status=403, errcode="M_FORBIDDEN")
    create, send = await enqueue(
        db,
        OutboxItem(lane, BOT, CreateRoom(conversation_id=str(conversation), is_direct=True)),
        OutboxItem(
            lane, BOT, Send(event_type="m.room.message", content={"msgtype": "m.text", "body": "x"})
        ),
    )
    await drain(make_sender(db, hs, session))
    assert (await row(conn, create))["state"] == "dead"
    failed = await row(conn, send)
    assert (failed["state"], failed["attempts"]) == ("dead", 1)  # at once, not after retries
    assert "was never made" in failed["last_error"]
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 2  # no room: nothing to report
    assert await conn.fetchval("SELECT count(*) FROM portal") == 0


async def test_create_room_after_a_crash_adopts_the_room_behind_its_alias(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    conversation = uuid.uuid4()
    lane = conversation_lane(conversation)
    payload = CreateRoom(
        conversation_id=str(conversation), alias_localpart=f"_pn_conv_{conversation}", invite=[USER]
    )
    [create] = await enqueue(db, OutboxItem(lane, BOT, payload))
    with pytest.raises(Crash):
        await make_sender(db, hs, session, store=CrashBeforeCommit()).run_once()
    assert await conn.fetchval("SELECT count(*) FROM portal") == 0
    await expire_leases(conn)
    sender = make_sender(db, hs, session)
    await drain(sender)
    [room_id] = hs.rooms
    assert [c.status for c in hs.calls_to("/createRoom")] == [200, 400]
    assert len(hs.calls_to("/directory/room/")) == 1
    assert (
        await conn.fetchval("SELECT room_id FROM portal WHERE conversation_id = $1", conversation)
        == room_id
    )
    assert (await row(conn, create))["result"]["room_id"] == room_id
    # A conversation with a portal gets no second room.
    [again] = await enqueue(db, OutboxItem(lane, BOT, payload))
    await drain(sender)
    assert (await row(conn, again))["result"] == {"room_id": room_id}
    assert len(hs.calls_to("/createRoom")) == 2 and len(hs.rooms) == 1


async def test_other_actions_reach_the_homeserver(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT, GHOST])
    hs.registered.add(GHOST)
    ids = await enqueue(db, message(room_id, "to be deleted", sender=GHOST))
    ids += await enqueue(
        db,
        OutboxItem(
            room_id,
            BOT,
            SetState(
                room_id=room_id, event_type="m.room.topic", state_key="", content={"topic": "New"}
            ),
        ),
        OutboxItem(room_id, BOT, Invite(room_id=room_id, user_id=USER, reason="join us")),
        OutboxItem(room_id, BOT, Kick(room_id=room_id, user_id=USER, reason="bye")),
        OutboxItem(
            room_id, GHOST, Redact(room_id=room_id, reason="deleted", refs={"/event_id": ids[0]})
        ),
        OutboxItem(room_id, GHOST, SetProfile(displayname="Alice", avatar_url="mxc://localhost/a")),
        OutboxItem(room_id, GHOST, Leave(room_id=room_id, reason="done")),
    )
    await drain(make_sender(db, hs, session))
    states = [(await row(conn, i))["state"] for i in ids]
    assert states == ["sent"] * 7
    room = hs.rooms[room_id]
    [original] = room.timeline()
    assert original.redacted
    [redaction] = room.timeline("m.room.redaction")
    assert (redaction.sender, redaction.redacts, redaction.content) == (
        GHOST,
        original.event_id,
        {"reason": "deleted"},
    )
    redact_result = (await row(conn, ids[4]))["result"]
    assert redact_result == {"event_id": redaction.event_id, "room_id": room_id}
    assert re.search(
        rf"/redact/\$ev\d+/bridge-outbox-{ids[4]}-\d+$", hs.calls_to("/redact/")[0].path
    )
    topic = room.state[("m.room.topic", "")]
    assert topic.content == {"topic": "New"}
    assert (await row(conn, ids[1]))["result"]["event_id"] == topic.event_id
    members = [
        (e.sender, e.state_key, e.content)
        for e in room.events
        if e.type == "m.room.member" and e.state_key in (USER, GHOST)
    ][-3:]
    assert members == [
        (BOT, USER, {"membership": "invite", "reason": "join us"}),
        (BOT, USER, {"membership": "leave", "reason": "bye"}),
        (GHOST, GHOST, {"membership": "leave", "reason": "done"}),
    ]
    assert hs.profiles[GHOST] == {"displayname": "Alice", "avatar_url": "mxc://localhost/a"}


async def test_a_reference_waits_for_its_row_and_fails_with_it(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    hs.fail("/send/", status=500, errcode="M_UNKNOWN", times=1)
    [original] = await enqueue(db, message(room_id, "hello"))
    [edit, orphan] = await enqueue(
        db,
        OutboxItem(
            "edits",
            BOT,
            Send(
                room_id=room_id,
                event_type="m.room.message",
                content={
                    "msgtype": "m.text",
                    "body": "* hello!",
                    "m.new_content": {"msgtype": "m.text", "body": "hello!"},
                    "m.relates_to": {"rel_type": "m.replace"},
                },
                refs={"/content/m.relates_to/event_id": original},
            ),
        ),
        OutboxItem("edits", BOT, Redact(room_id=room_id, refs={"/event_id": 999999})),
    )
    sender = make_sender(db, hs, session, max_attempts=5)
    await drain(sender)
    waiting = await row(conn, edit)
    assert waiting["state"] == "pending" and "waiting for outbox row" in waiting["last_error"]
    for _ in range(3):  # the two lanes may be taken in either order once both are due
        await make_due(conn)
        await drain(sender)
    first, second = hs.rooms[room_id].timeline()[:2]
    assert first.content["body"] == "hello"
    assert second.content["m.relates_to"] == {"rel_type": "m.replace", "event_id": first.event_id}
    assert (await row(conn, orphan))["state"] == "dead"


async def test_rows_queued_before_actions_were_typed_are_still_sent(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    """Payloads as earlier versions wrote them: no ``action`` key, nulls for absent values."""
    room_id = hs.add_room([BOT], invited=[GHOST])
    conversation = uuid.uuid4()
    lane = conversation_lane(conversation)
    legacy = [
        (room_id, GHOST, "join", {"room_id": room_id}),
        (f"ghost:{GHOST}", GHOST, "profile", {"displayname": "Alice"}),
        (
            room_id,
            GHOST,
            "send",
            {
                "room_id": room_id,
                "event_type": "m.room.message",
                "content": {"msgtype": "m.text", "body": "old"},
                "message_id": str(uuid.uuid4()),
            },
        ),
        (
            lane,
            BOT,
            "create_room",
            {
                "conversation_id": str(conversation),
                "name": None,
                "topic": None,
                "alias_localpart": f"_pn_conv_{conversation}",
                "invite": [USER],
                "is_direct": False,
                "power_levels": {"users": {BOT: 100}},
            },
        ),
        (lane, BOT, "invite", {"user_id": GHOST}),
    ]
    ids = [await enqueue_stored(db, *r) for r in legacy]
    ids.append(
        await enqueue_stored(
            db,
            room_id,
            GHOST,
            "redact",
            {"room_id": room_id, "event_id": None, "reason": "gone", "refs": {"/event_id": ids[2]}},
        )
    )
    await drain(make_sender(db, hs, session))
    assert [(await row(conn, i))["state"] for i in ids] == ["sent"] * 6
    [original] = hs.rooms[room_id].timeline()
    assert original.content["body"] == "old" and original.redacted
    portal = await conn.fetchval(
        "SELECT room_id FROM portal WHERE conversation_id = $1", conversation
    )
    assert hs.rooms[portal].members[GHOST] == "invite"
    assert hs.profiles[GHOST] == {"displayname": "Alice"}


# --- leases: no transaction across the network, takeover --------------------------------------


async def wait_for(predicate: Any, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_no_transaction_or_lock_is_held_while_the_homeserver_answers(
    db: Database, conn: asyncpg.Connection, hs: FakeHomeserver, session: ClientSession
) -> None:
    room_id = hs.add_room([BOT])
    release = hs.hold_response("/send/")
    await enqueue(db, message(room_id, "first"))
    sender = make_sender(db, hs, session)
    sending = asyncio.create_task(sender.run_once())
    await hs.wait_for(lambda: len(hs.calls_to("/send/")) == 1)
    # While the request is out: no open transaction in the sender's pool, no lock on the lane.
    in_transaction = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
    )
    assert in_transaction == 0
    lane = await conn.fetchrow(
        "SELECT lease_owner, lease FROM outbox_lane WHERE lane = $1", room_id
    )
    assert lane["lease_owner"] == "bridge" and lane["lease"] is not None
    # Enqueueing in the lane being sent does not wait for the homeserver.
    async with asyncio.timeout(5):
        await enqueue(db, message(room_id, "second"))
    release.set()
    assert await sending is True
    await drain(sender)
    assert bodies(hs, room_id) == ["first", "second"]
    assert await conn.fetchval("SELECT count(*) FROM outbox_lane") == 0


async def test_an_expired_lease_is_taken_over_and_the_stalled_holder_records_nothing(
    db: Database,
    conn: asyncpg.Connection,
    hs: FakeHomeserver,
    session: ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    room_id = hs.add_room([BOT])
    release = hs.hold_response("/send/")
    first, second = await enqueue(db, message(room_id, "1"), message(room_id, "2"))
    stalled = make_sender(db, hs, session)
    stalling = asyncio.create_task(stalled.run_once())
    await hs.wait_for(lambda: len(hs.calls_to("/send/")) == 1)
    await expire_leases(conn)  # the holder stalled past its lease
    other = make_sender(db, hs, session)
    taking_over = asyncio.create_task(drain(other))
    await hs.wait_for(lambda: len(hs.calls_to("/send/")) == 2)
    release.set()  # both get their answers now
    await taking_over
    assert await stalling is True
    assert "was taken over" in caplog.text and "Taking over outbox lane" in caplog.text
    # Row 1 went twice under one transaction id: one event. Order kept, nothing duplicated.
    paths = [c.path for c in hs.calls_to("/send/")]
    assert paths[0] == paths[1] and len(set(paths)) == 2
    assert bodies(hs, room_id) == ["1", "2"]
    for row_id in (first, second):
        assert (await row(conn, row_id))["state"] == "sent"
    assert await conn.fetchval("SELECT count(*) FROM outbox_lane") == 0
