"""Events no retry can help are dead-lettered at once; a dead letter's reason is one bounded line."""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.config import InboxConfig
from bridge.matrix.inbox.events import EventRefused, InboxEvent, Outcome
from bridge.matrix.inbox.processor import InboxProcessor, describe_error
from bridge.matrix.inbox.store import InboxStore
from tests.matrix.test_handlers import ALICE, DM, Bridge, member, open_dm, text
from tests.matrix.test_inbox import db as db  # (the fixture)
from tests.matrix.test_inbox import incoming, make_due, processor, setup_effects, store


async def test_a_refused_event_is_dead_lettered_on_its_first_attempt(
    db: Any, conn: asyncpg.Connection
) -> None:
    calls: list[str] = []

    async def refuse(conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        calls.append(event.event_id)
        if event.event_id == "$e1":
            raise EventRefused("content is not what this handler can ever apply")
        return Outcome.PROCESSED

    await setup_effects(conn)
    await store(db, "t", [incoming(1), incoming(2)])
    await processor(db, refuse, max_attempts=3).drain()
    row = await conn.fetchrow("SELECT attempts, error FROM dead_letter WHERE event_id = '$e1'")
    assert (row["attempts"], row["error"]) == (1, "content is not what this handler can ever apply")
    states = dict(await conn.fetch("SELECT event_id, state FROM inbox"))
    assert states == {"$e1": "dead", "$e2": "processed"}
    assert calls.count("$e1") <= 2  # the optimistic batch, then once alone: never retried later


async def test_an_absurd_timestamp_that_got_in_is_refused_by_its_handler_once(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    """Intake refuses these; a handler given one anyway (an older inbox row) refuses it too."""
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    retrying = InboxProcessor(
        bridge.db, InboxStore(), bridge.dispatcher, InboxConfig(max_attempts=3, retry_delay=60)
    )
    bridge.processor = retrying
    await bridge.feed(text(DM, ALICE, "from the future") | {"origin_server_ts": 10**15})
    row = await conn.fetchrow("SELECT attempts, error FROM dead_letter WHERE source = 'inbox'")
    assert row["attempts"] == 1
    assert row["error"] == "origin_server_ts 1000000000000000 is out of range"
    await make_due(conn)
    assert await retrying.drain() == 0
    assert await conn.fetchval("SELECT count(*) FROM message") == 0


async def test_a_failure_is_stored_as_one_bounded_line_without_traceback(
    db: Any, conn: asyncpg.Connection
) -> None:
    async def crash(conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        raise ValueError("bad\nthing\x00 " + "x" * 5000)

    await setup_effects(conn)
    await store(db, "t", [incoming(1)])
    proc = processor(db, crash, max_attempts=2)
    await proc.drain()
    last_error = await conn.fetchval("SELECT last_error FROM inbox")
    await make_due(conn)
    await proc.drain()
    error = await conn.fetchval("SELECT error FROM dead_letter")
    for text_ in (last_error, error):
        assert text_.startswith("ValueError: bad thing")
        assert "Traceback" not in text_ and "\n" not in text_ and "\x00" not in text_
        assert len(text_) <= 500


def test_describe_error() -> None:
    assert describe_error(RuntimeError("boom")) == "RuntimeError: boom"
    assert describe_error(KeyError()) == "KeyError"
    assert describe_error(EventRefused("why")) == "why"


async def test_a_member_event_for_a_ghost_id_with_a_newline_is_not_a_ghost(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    ghost = bridge.ids.ghost(bob)
    await bridge.feed(member(DM, ALICE, ghost + "\n", "invite", is_direct=True))
    assert bridge.outbox.actions == []  # no join, leave or notice for an invalid user id
    assert await conn.fetchval("SELECT count(*) FROM connection_request") == 0
    await bridge.feed(member(DM, ALICE, ghost, "invite", is_direct=True))
    assert await conn.fetchval("SELECT count(*) FROM connection_request") == 1
