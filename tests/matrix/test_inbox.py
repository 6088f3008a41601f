"""Inbox workers on a real Postgres: order, exactly-once effects, retries and dead letters."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bridge.config import InboxConfig
from bridge.db.database import Database
from bridge.matrix.inbox.dispatch import Dispatcher
from bridge.matrix.inbox.events import EventKind, InboxEvent, IncomingEvent, Outcome
from bridge.matrix.inbox.intake import IntakeService
from bridge.matrix.inbox.processor import InboxProcessor
from bridge.matrix.inbox.store import InboxStore


def incoming(
    n: int, room: str = "!a:localhost", event_type: str = "m.room.message"
) -> IncomingEvent:
    event = {
        "event_id": f"$e{n}",
        "room_id": room,
        "type": event_type,
        "sender": "@u:localhost",
        "content": {"body": str(n)},
    }
    return IncomingEvent(
        f"$e{n}", room, EventKind.PDU, event_type, "@u:localhost", json.dumps(event)
    )


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn, min_size=1, max_size=6)
    await database.open()
    yield database
    await database.close()


class Effects:
    """A handler writing a domain row per event, in the event's own DB transaction."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.fail = dict(fail or {})  # event id -> how many more times to fail
        self.calls: list[str] = []

    async def __call__(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        self.calls.append(event.event_id)
        await conn.execute(
            "INSERT INTO effects (event_id, room) VALUES ($1, $2)", event.event_id, event.lane
        )
        if self.fail.get(event.event_id, 0) > 0:
            self.fail[event.event_id] -= 1
            raise RuntimeError(f"handler failed on {event.event_id}")
        return Outcome.PROCESSED


async def setup_effects(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TABLE effects (seq bigserial, event_id text NOT NULL, room text NOT NULL)"
    )


def processor(db: Database, handler: Any, **config: Any) -> InboxProcessor:
    dispatcher = Dispatcher()
    dispatcher.register("m.room.message", handler)
    settings = InboxConfig(
        **({"workers": 2, "batch_size": 100, "max_attempts": 3, "retry_delay": 60.0} | config)
    )
    return InboxProcessor(db, InboxStore(), dispatcher, settings)


async def store(db: Database, txn: str, events: list[IncomingEvent]) -> None:
    intake = IntakeService(db, InboxStore(), lambda: None)
    await intake.receive(txn, hashlib.sha256(txn.encode()).digest(), events, [])


async def make_due(conn: asyncpg.Connection) -> None:
    """Skip the retry back-off without waiting for it."""
    await conn.execute("UPDATE inbox_lane SET not_before = now()")


async def test_events_are_processed_in_room_order(db: Database, conn: asyncpg.Connection) -> None:
    await setup_effects(conn)
    events = [incoming(n, "!a:localhost" if n % 2 else "!b:localhost") for n in range(40)]
    await store(db, "t1", events[:20])
    await store(db, "t2", events[20:])
    handler = Effects()
    proc = processor(db, handler, batch_size=7)
    await proc.drain()
    for room in ("!a:localhost", "!b:localhost"):
        got = [
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM effects WHERE room = $1 ORDER BY seq", room
            )
        ]
        assert got == [e.event_id for e in events if e.lane == room]
    states = await conn.fetch("SELECT DISTINCT state FROM inbox")
    assert [s["state"] for s in states] == ["processed"]
    assert await conn.fetchval("SELECT count(*) FROM inbox_lane") == 0


async def test_unhandled_types_are_kept_and_marked_ignored(
    db: Database, conn: asyncpg.Connection
) -> None:
    await setup_effects(conn)
    await store(db, "t", [incoming(1, event_type="m.room.topic"), incoming(2)])
    await processor(db, Effects()).drain()
    rows = await conn.fetch("SELECT event_id, state, processed_at FROM inbox ORDER BY id")
    assert [(r["event_id"], r["state"]) for r in rows] == [("$e1", "ignored"), ("$e2", "processed")]
    assert all(r["processed_at"] is not None for r in rows)


async def test_failing_event_retries_then_succeeds_with_effects_once(
    db: Database, conn: asyncpg.Connection
) -> None:
    await setup_effects(conn)
    await store(db, "t", [incoming(1), incoming(2), incoming(3)])
    # Fails in the optimistic batch, then again when the batch is redone event by event.
    handler = Effects(fail={"$e2": 2})
    proc = processor(db, handler)
    await proc.drain()
    # $e1 committed, $e2 failed (its effect rolled back), $e3 waits behind it: order is kept.
    assert [
        r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects ORDER BY seq")
    ] == ["$e1"]
    row = await conn.fetchrow(
        "SELECT state, attempts, last_error FROM inbox WHERE event_id = '$e2'"
    )
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert "handler failed on $e2" in row["last_error"]
    assert await proc.run_once() is False  # backing off: not due yet
    await make_due(conn)
    await proc.drain()
    assert [
        r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects ORDER BY seq")
    ] == ["$e1", "$e2", "$e3"]
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'processed'") == 3


async def test_failing_event_is_dead_lettered_and_room_goes_on(
    db: Database, conn: asyncpg.Connection
) -> None:
    await setup_effects(conn)
    await store(db, "t", [incoming(1), incoming(2), incoming(3), incoming(4, "!other:localhost")])
    handler = Effects(fail={"$e2": 99})
    proc = processor(db, handler, max_attempts=3)
    for _ in range(3):
        await proc.drain()
        await make_due(conn)
    assert handler.calls.count("$e2") >= 3
    effects = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects ORDER BY seq")]
    assert sorted(effects) == ["$e1", "$e3", "$e4"]  # $e2's effects never committed
    assert effects.index("$e1") < effects.index("$e3")
    dead = await conn.fetchrow(
        "SELECT source, event_id, room_id, txn_id, attempts, error, payload FROM dead_letter"
    )
    assert (
        dead["source"],
        dead["event_id"],
        dead["room_id"],
        dead["txn_id"],
        dead["attempts"],
    ) == ("inbox", "$e2", "!a:localhost", "t", 3)
    assert "RuntimeError: handler failed on $e2" in dead["error"]
    assert json.loads(dead["payload"])["content"] == {"body": "2"}
    states = dict(await conn.fetch("SELECT event_id, state FROM inbox"))
    assert states == {"$e1": "processed", "$e2": "dead", "$e3": "processed", "$e4": "processed"}
    assert await conn.fetchval("SELECT count(*) FROM inbox_lane") == 0


async def test_other_rooms_are_not_blocked_by_a_failing_room(
    db: Database, conn: asyncpg.Connection
) -> None:
    await setup_effects(conn)
    await store(db, "t", [incoming(1), incoming(2, "!b:localhost"), incoming(3, "!b:localhost")])
    proc = processor(db, Effects(fail={"$e1": 99}))
    await proc.drain()
    assert sorted(r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects")) == [
        "$e2",
        "$e3",
    ]


async def test_unprocessed_events_survive_a_restart(
    db: Database, dsn: str, conn: asyncpg.Connection
) -> None:
    await setup_effects(conn)
    await store(db, "t", [incoming(n) for n in range(10)])
    first = processor(db, Effects(), batch_size=4)
    assert await first.run_once() is True  # 4 processed, then the process "dies"
    await db.close()
    fresh = Database(dsn, min_size=1, max_size=4)
    await fresh.open()
    try:
        await processor(fresh, Effects()).drain()
    finally:
        await fresh.close()
    effects = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects ORDER BY seq")]
    assert effects == [f"$e{n}" for n in range(10)]
    await db.open()  # for the fixture's teardown


async def test_concurrent_workers_process_each_event_once_in_order(
    db: Database, dsn: str, conn: asyncpg.Connection
) -> None:
    await setup_effects(conn)
    rooms = [f"!r{n}:localhost" for n in range(8)]
    events = [incoming(n, rooms[n % len(rooms)]) for n in range(400)]
    for start in range(0, 400, 100):
        await store(db, f"t{start}", events[start : start + 100])
    other = Database(dsn, min_size=1, max_size=6)
    await other.open()
    try:
        procs = [processor(db, Effects(), batch_size=5), processor(other, Effects(), batch_size=5)]
        for proc in procs:
            proc.start()
        while await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # bounded by the test timeout; polls a condition
        for proc in procs:
            await proc.stop()
    finally:
        await other.close()
    assert await conn.fetchval("SELECT count(*) FROM effects") == 400
    assert await conn.fetchval("SELECT count(DISTINCT event_id) FROM effects") == 400
    for room in rooms:
        got = [
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM effects WHERE room = $1 ORDER BY seq", room
            )
        ]
        assert got == [e.event_id for e in events if e.lane == room]


async def test_intake_during_processing_never_strands_an_event(
    db: Database, conn: asyncpg.Connection
) -> None:
    """Events arriving for a lane while a worker drains it are always picked up."""
    await setup_effects(conn)
    proc = processor(db, Effects(), batch_size=3)
    proc.start()
    try:
        for n in range(0, 300, 3):
            await store(db, f"t{n}", [incoming(n), incoming(n + 1), incoming(n + 2)])
            proc.wake()
        for _ in range(400):
            if not await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'"):
                break
            await asyncio.sleep(0.05)
    finally:
        await proc.stop()
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'") == 0
    assert await conn.fetchval("SELECT count(*) FROM effects") == 300
    assert await conn.fetchval("SELECT count(*) FROM inbox_lane") == 0
