"""Runs of room messages applied as a batch: the same effects as one by one, in a few statements."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bridge.config import Config
from bridge.db.database import Database
from bridge.matrix.inbox.events import EventKind, InboxEvent
from tests.matrix.test_handlers import ALICE, DM, Bridge, connect, member, open_dm, text

MGMT = "!mgmt:localhost"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RUN = 15  # events in the mixed run
GROUP = "!group:localhost"


@pytest.fixture
async def batched(dsn: str, config: Config) -> AsyncIterator[Bridge]:
    db = Database(dsn, min_size=1, max_size=4)
    await db.open()
    yield Bridge(db, config)
    await db.close()


@pytest.fixture
async def one_by_one(other_dsn: str, config: Config) -> AsyncIterator[Bridge]:
    db = Database(other_dsn, min_size=1, max_size=4)
    await db.open()
    yield Bridge(db, config, batch=False)
    await db.close()


async def _world(b: Bridge) -> None:
    """A DM portal of Alice and Bob, a group portal with Cat too, Alice's management room."""
    bob, cat = await b.person("Bob"), await b.person("Cat")
    await open_dm(b, bob)
    await connect(b, cat)
    await b.feed(member(GROUP, ALICE, b.ids.ghost(bob), "invite"))
    await b.feed(member(GROUP, ALICE, b.ids.ghost(cat), "invite"))
    await b.feed(member(MGMT, ALICE, b.ids.bot, "invite", is_direct=True))


def _mixed_run(b: Bridge, bob_ghost: str) -> list[dict[str, Any]]:
    """Every kind of m.room.message, in one run, with fixed event ids and timestamps."""
    ts = iter(range(1_700_000_000_000, 1_700_000_001_000))

    def msg(event_id: str, room: str, sender: str, body: Any, **extra: Any) -> dict[str, Any]:
        return {
            "type": "m.room.message",
            "room_id": room,
            "sender": sender,
            "event_id": event_id,
            "origin_server_ts": next(ts),
            "content": {"msgtype": "m.text", "body": body, **extra},
        }

    return [
        msg("$plain", DM, ALICE, "hello", **{"m.mentions": {"user_ids": [bob_ghost, ALICE, 5]}}),
        msg(
            "$html",
            GROUP,
            ALICE,
            "bold",
            format="org.matrix.custom.html",
            formatted_body="<b>bold</b><script>x</script>",
        ),
        msg("$echo", DM, bob_ghost, "from the ghost"),
        msg("$elsewhere", "!unbridged:localhost", ALICE, "not a portal"),
        msg(
            "$reply",
            DM,
            ALICE,
            "a reply",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": "$plain"}}},
        ),
        msg(
            "$edit",
            GROUP,
            ALICE,
            "* bolder",
            **{
                "m.new_content": {"msgtype": "m.text", "body": "bolder"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$html"},
            },
        ),
        msg("$blocked", DM, "@eve:evil.org", "spam"),
        msg("$command", MGMT, ALICE, "whoami"),
        msg("$stranger", DM, "@carol:localhost", "let me in"),
        msg(
            "$after",
            GROUP,
            ALICE,
            "after all that",
            **{"m.mentions": {"user_ids": ["@carol:localhost"]}},
        ),
        msg("$empty", DM, ALICE, "   "),
        msg("$nobody", DM, ALICE, None),
        {
            **msg("$image", GROUP, ALICE, "cat.png"),
            "content": {
                "msgtype": "m.image",
                "body": "cat.png",
                "url": "mxc://localhost/cat",
                "info": {"w": 1},
            },
        },
        msg("$bad-media", GROUP, ALICE, "x", msgtype="m.file"),
        msg(
            "$last",
            DM,
            ALICE,
            "bye",
            format="org.matrix.custom.html",
            formatted_body="<i>bye</i><script>x</script>",
        ),
    ]


async def _state(b: Bridge) -> dict[str, Any]:
    """What the run left, with generated ids replaced by names and event ids."""
    async with b.db.acquire() as conn:
        names = {
            r["id"]: r["display_name"]
            for r in await conn.fetch("SELECT id, display_name FROM network_user")
        }
        events = {
            r["id"]: r["event_id"] for r in await conn.fetch("SELECT id, event_id FROM message")
        }
        messages = [
            (
                r["event_id"],
                names[r["sender_id"]],
                r["content"],
                r["format"],
                r["formatted_content"],
                r["msgtype"],
                r["media"],
                events.get(r["reply_to_message_id"]),
                sorted(names[u] for u in r["mentions"]),
                r["record_version"],
                r["is_active"],
                r["sent_at"],
            )
            for r in await conn.fetch("SELECT * FROM message ORDER BY event_id")
        ]
        notifications = []
        for r in await conn.fetch("SELECT * FROM notification"):
            payload = json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
            about = events.get(uuid.UUID(payload["messageId"])) if "messageId" in payload else None
            notifications.append(
                (names[r["user_id"]], r["kind"], r["title"], r["body"], about or "")
            )
        notifications.sort()
        conversations = sorted(
            (r["title"] or "", r["message_count"], r["last_message_at"])
            for r in await conn.fetch("SELECT * FROM conversation")
        )
        inbox = [
            tuple(r) for r in await conn.fetch("SELECT event_id, state FROM inbox ORDER BY id")
        ][-_RUN:]
        dead = await conn.fetchval("SELECT count(*) FROM dead_letter")

    def named(body: str | None) -> str | None:
        return None if body is None else _UUID.sub(lambda m: names[uuid.UUID(m.group())], body)

    sends = [
        (lane, action, named(payload.get("content", {}).get("body")))
        for lane, _, action, payload in b.outbox.actions
    ]
    return {
        "messages": messages,
        "notifications": notifications,
        "conversations": conversations,
        "inbox": inbox,
        "dead": dead,
        "outbox": sends,
    }


async def test_a_mixed_run_has_the_effects_of_one_event_at_a_time(
    batched: Bridge, one_by_one: Bridge
) -> None:
    results = []
    for b in (batched, one_by_one):
        await _world(b)
        async with b.db.acquire() as conn:
            bob = await conn.fetchval("SELECT id FROM network_user WHERE display_name = 'Bob'")
        b.outbox.actions.clear()
        await b.feed(*_mixed_run(b, b.ids.ghost(bob)))  # one transaction: one run in one batch
        results.append(await _state(b))
    batch_state, reference = results
    assert batch_state == reference
    # ...and the reference is what the handlers are meant to do.
    inbox = dict(reference["inbox"])
    assert [e for e, s in inbox.items() if s == "ignored"] == [
        "$echo",
        "$elsewhere",
        "$blocked",
        "$nobody",
    ]
    posted = {m[0]: m for m in reference["messages"]}
    assert set(posted) == {"$plain", "$html", "$reply", "$after", "$image", "$last"}
    assert posted["$plain"][8] == ["Bob"]  # the ghost mentioned; Alice herself and the number not
    assert posted["$reply"][7] == "$plain"
    assert posted["$last"][3:5] == ("org.matrix.custom.html", "<i>bye</i>")
    assert (posted["$html"][2], posted["$html"][4], posted["$html"][9]) == ("bolder", None, 2)
    assert posted["$after"][8] == []  # Carol is known now (from "$stranger") but takes no part
    assert posted["$image"][6] == {"url": "mxc://localhost/cat", "info": {"w": 1}}
    notices = [body for lane, action, body in reference["outbox"] if action == "send"]
    assert any("not allowed" in n for n in notices)
    assert (
        sum("Not delivered to the network" in n for n in notices) == 3
    )  # stranger, empty, bad media
    assert any(n.startswith("You are alice") for n in notices)
    assert ("Bob", "mention", "You were mentioned", "hello", "$plain") in reference["notifications"]
    assert reference["dead"] == 0


def _events(run: list[dict[str, Any]], first_id: int) -> list[InboxEvent]:
    return [
        InboxEvent(
            id=first_id + i,
            event_id=ev["event_id"],
            lane=ev["room_id"],
            kind=EventKind.PDU,
            event_type=ev["type"],
            sender=ev["sender"],
            txn_id="t",
            event=ev,
            attempts=0,
            received_at=None,
        )  # type: ignore[arg-type]
        for i, ev in enumerate(run)
    ]


def _plain_run(count: int, prefix: str) -> list[dict[str, Any]]:
    rooms = [DM, GROUP]
    return [
        {**text(rooms[i % 2], ALICE, f"{prefix} {i}"), "event_id": f"${prefix}{i}"}
        for i in range(count)
    ]


async def _statements(b: Bridge, events: list[InboxEvent]) -> list[str]:
    seen: list[str] = []

    def log(record: Any) -> None:
        seen.append(record.query)

    async with b.db.acquire() as conn:
        conn.add_query_logger(log)
        try:
            async with conn.transaction():
                outcomes = await b.dispatcher.dispatch_many(conn, events)
        finally:
            conn.remove_query_logger(log)
    assert {o.value for o in outcomes} == {"processed"}
    return seen


async def test_plain_messages_take_the_same_statements_however_many(
    batched: Bridge, conn: asyncpg.Connection
) -> None:
    await _world(batched)
    await _statements(batched, _events(_plain_run(2, "warm"), 500))  # asyncpg learns the types
    few = await _statements(batched, _events(_plain_run(4, "few"), 1_000))
    many = await _statements(batched, _events(_plain_run(200, "many"), 2_000))
    assert few == many and len(many) <= 7  # BEGIN, lookups (3), messages, notifications, COMMIT
    assert await conn.fetchval("SELECT count(*) FROM message") == 206
    # Alice posts; Bob in the DM, Bob and Cat in the group are notified of each message.
    assert (
        await conn.fetchval("SELECT count(*) FROM notification WHERE kind = 'message'")
        == 2 * 103 + 103
    )
    for conversation in await conn.fetch(
        "SELECT id, message_count, last_message_at FROM conversation"
    ):
        count, last = await conn.fetchrow(
            "SELECT count(*), max(sent_at) FROM message WHERE conversation_id = $1",
            conversation["id"],
        )
        assert (
            (conversation["message_count"], conversation["last_message_at"])
            == (count, last)
            == (103, last)
        )


_COUNTS = (
    "SELECT count(*) FROM message",
    "SELECT count(*) FROM notification WHERE kind = 'message'",
)


async def test_a_replayed_run_adds_nothing(batched: Bridge, conn: asyncpg.Connection) -> None:
    await _world(batched)
    run = _plain_run(10, "again")
    await _statements(batched, _events(run, 1_000))
    before = [await conn.fetchval(q) for q in _COUNTS]
    await _statements(batched, _events(run, 1_000))
    after = [await conn.fetchval(q) for q in _COUNTS]
    assert before == after == [10, 15]
    assert await conn.fetchval("SELECT sum(message_count) FROM conversation") == 10


async def test_edits_and_replies_reuse_the_lookups_and_a_command_looks_again(
    batched: Bridge, conn: asyncpg.Connection
) -> None:
    await _world(batched)
    await _statements(batched, _events(_plain_run(2, "warm"), 500))
    run = _plain_run(6, "base")
    for i, target in enumerate(run[:3]):
        run.append(
            {
                **text(
                    target["room_id"],
                    ALICE,
                    f"* edit {i}",
                    **{
                        "m.new_content": {"msgtype": "m.text", "body": f"edited {i}"},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": target["event_id"]},
                    },
                ),
                "event_id": f"$edit{i}",
            }
        )
        run.append(
            {
                **text(
                    target["room_id"],
                    ALICE,
                    f"re {i}",
                    **{"m.relates_to": {"m.in_reply_to": {"event_id": target["event_id"]}}},
                ),
                "event_id": f"$re{i}",
            }
        )
        run.append({**text(GROUP, ALICE, f"after {i}"), "event_id": f"$after{i}"})
    lookups = [q for q in await _statements(batched, _events(run, 1_000)) if "management_of" in q]
    assert len(lookups) == 1
    assert await conn.fetchval("SELECT count(*) FROM message WHERE content LIKE 'edited %'") == 3
    assert (
        await conn.fetchval("SELECT count(*) FROM message WHERE reply_to_message_id IS NOT NULL")
        == 3
    )
    commands = [{**text(MGMT, ALICE, "whoami"), "event_id": "$cmd"}, *_plain_run(2, "later")]
    lookups = [
        q for q in await _statements(batched, _events(commands, 2_000)) if "management_of" in q
    ]
    assert len(lookups) == 2


async def test_a_long_run_is_stored_in_parts(batched: Bridge, conn: asyncpg.Connection) -> None:
    await _world(batched)
    await _statements(batched, _events(_plain_run(2, "warm"), 500))
    statements = await _statements(batched, _events(_plain_run(600, "long"), 1_000))
    inserts = [q for q in statements if "INSERT INTO message" in q]
    assert len(inserts) == 3  # 256 + 256 + 88, with the one lookup
    assert len([q for q in statements if "management_of" in q]) == 1
    assert await conn.fetchval("SELECT count(*) FROM message WHERE content LIKE 'long %'") == 600
