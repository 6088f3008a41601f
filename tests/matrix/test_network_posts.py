"""A network post written in one statement (the app's way) queues what the listener would, with
the same rules: checked both ways, and the statement's own re-check of what it read."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from bridge.errors import Conflict, Forbidden, NotFound
from bridge.matrix.bridging.post_store import PostContext, PostStore
from bridge.matrix.bridging.to_matrix.network_posts import NetworkPostsToMatrix
from bridge.matrix.outbox.queue import OutboxQueue
from bridge.matrix.outbox.store import OutboxStore
from bridge.messaging.models import NewMessage, Origin
from tests.matrix.test_handlers import ALICE, DM, Bridge, open_dm


def one_statement(bridge: Bridge, store: PostStore | None = None) -> list[int]:
    """Install the app's post writer; the list counts the sender's wake-ups."""
    wakes: list[int] = []
    queue = OutboxQueue(OutboxStore())
    queue.wake_with(lambda: wakes.append(1))
    writer = NetworkPostsToMatrix(bridge.to_matrix, queue, store or PostStore())
    bridge.messaging.write_posts_with(writer)
    return wakes


async def outbox_rows(conn: asyncpg.Connection) -> list[tuple[str, str, str, dict[str, Any]]]:
    rows = await conn.fetch(
        "SELECT lane, sender, action, payload::text AS p FROM outbox ORDER BY id"
    )
    return [(r["lane"], r["sender"], r["action"], json.loads(r["p"])) for r in rows]


async def dm(bridge: Bridge, conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Bob (network) in a 1:1 with Alice (Matrix), whose portal is DM: (bob, alice, conv)."""
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    conv = await conn.fetchval("SELECT conversation_id FROM portal WHERE room_id = $1", DM)
    alice = await conn.fetchval("SELECT id FROM network_user WHERE matrix_user_id = $1", ALICE)
    await conn.execute("DELETE FROM outbox; DELETE FROM notification")
    return bob, alice, conv


@pytest.mark.parametrize("single", [False, True], ids=["transaction", "one-statement"])
async def test_a_post_stores_and_queues_the_same_either_way(
    bridge: Bridge, conn: asyncpg.Connection, single: bool
) -> None:
    wakes = one_statement(bridge) if single else []
    bob, alice, conv = await dm(bridge, conn)
    before = await conn.fetchrow(
        "SELECT message_count, last_message_at FROM conversation WHERE id = $1", conv
    )
    new = NewMessage("hi @alice", formatted_content="<b>hi</b>", mentions=(alice,))
    msg = await bridge.messaging.send_message(bob, conv, new, origin=Origin.NETWORK)
    ghost = bridge.ids.ghost(bob)
    assert await outbox_rows(conn) == [
        (f"ghost:{ghost}", ghost, "profile", {"action": "profile", "displayname": "Bob"}),
        (
            f"conv:{conv}",
            ghost,
            "send",
            {
                "action": "send",
                "room_id": DM,
                "event_type": "m.room.message",
                "message_id": str(msg.id),
                "content": {
                    "msgtype": "m.text",
                    "body": "hi @alice",
                    "format": "org.matrix.custom.html",
                    "formatted_body": "<b>hi</b>",
                    "m.mentions": {"user_ids": [ALICE]},
                },
            },
        ),
    ]
    stored = await conn.fetchrow(
        "SELECT content, sender_id, mentions FROM message WHERE id = $1", msg.id
    )
    assert (stored["content"], stored["sender_id"], stored["mentions"]) == (
        "hi @alice",
        bob,
        [alice],
    )
    after = await conn.fetchrow(
        "SELECT message_count, last_message_at FROM conversation WHERE id = $1", conv
    )
    assert (
        after["message_count"] == before["message_count"] + 1
        and after["last_message_at"] == msg.sent_at
    )
    notes = await conn.fetch("SELECT user_id, kind, body, payload::text AS p FROM notification")
    assert [(n["user_id"], n["kind"], n["body"]) for n in notes] == [
        (alice, "mention", "hi @alice")
    ]
    assert json.loads(notes[0]["p"])["messageId"] == str(msg.id)
    assert await conn.fetchval("SELECT displayname FROM ghost WHERE user_id = $1", ghost) == "Bob"
    # The second post: the ghost's profile is known, only the message is queued.
    await bridge.messaging.send_message(bob, conv, NewMessage("again"), origin=Origin.NETWORK)
    assert [a for _, _, a, _ in await outbox_rows(conn)] == ["profile", "send", "send"]
    assert wakes == ([1, 1] if single else [])
    # A rename: the profile again, before the message.
    await conn.execute("UPDATE network_user SET display_name = 'Robert' WHERE id = $1", bob)
    await bridge.messaging.send_message(bob, conv, NewMessage("renamed"), origin=Origin.NETWORK)
    assert [(a, p.get("displayname")) for _, _, a, p in (await outbox_rows(conn))[3:]] == [
        ("profile", "Robert"),
        ("send", None),
    ]


@pytest.mark.parametrize("single", [False, True], ids=["transaction", "one-statement"])
async def test_a_matrix_users_post_is_not_queued(
    bridge: Bridge, conn: asyncpg.Connection, single: bool
) -> None:
    if single:
        one_statement(bridge)
    bob, alice, conv = await dm(bridge, conn)
    await bridge.messaging.send_message(
        alice, conv, NewMessage("from the API"), origin=Origin.NETWORK
    )
    assert await outbox_rows(conn) == []
    assert await conn.fetchval("SELECT count(*) FROM notification WHERE user_id = $1", bob) == 1


@pytest.mark.parametrize("single", [False, True], ids=["transaction", "one-statement"])
async def test_refused_posts_store_nothing(
    bridge: Bridge, conn: asyncpg.Connection, single: bool
) -> None:
    if single:
        one_statement(bridge)
    bob, _alice, conv = await dm(bridge, conn)
    carol = await bridge.person("Carol")
    counts = "SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM notification), (SELECT count(*) FROM outbox)"
    before = await conn.fetchrow(counts)
    with pytest.raises(Forbidden):
        await bridge.messaging.send_message(
            carol, conv, NewMessage("let me in"), origin=Origin.NETWORK
        )
    with pytest.raises(NotFound):
        await bridge.messaging.send_message(
            bob, uuid.uuid4(), NewMessage("nowhere"), origin=Origin.NETWORK
        )
    await conn.execute("UPDATE conversation SET is_active = false WHERE id = $1", conv)
    with pytest.raises(Conflict, match="deleted"):
        await bridge.messaging.send_message(
            bob, conv, NewMessage("too late"), origin=Origin.NETWORK
        )
    assert await conn.fetchrow(counts) == before


class DeletedWhileRead(PostStore):
    """The conversation is deleted (or the sender leaves it) right after the post's read."""

    def __init__(self, dsn: str, change: str) -> None:
        self.dsn, self.change = dsn, change

    async def get_post_context(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID, sender: uuid.UUID, ghost: str
    ) -> PostContext | None:
        context = await super().get_post_context(conn, conversation_id, sender, ghost)
        other = await asyncpg.connect(self.dsn)
        try:
            await other.execute(self.change, conversation_id, sender)
        finally:
            await other.close()
        return context


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            "UPDATE conversation SET is_active = false WHERE id = $1 AND $2::uuid IS NOT NULL",
            Conflict,
        ),
        (
            "DELETE FROM conversation_participant WHERE conversation_id = $1 AND user_id = $2",
            Forbidden,
        ),
    ],
    ids=["deleted", "left"],
)
async def test_the_statement_rechecks_what_it_read(
    bridge: Bridge, conn: asyncpg.Connection, dsn: str, change: str, error: type[Exception]
) -> None:
    wakes = one_statement(bridge, DeletedWhileRead(dsn, change))
    bob, _alice, conv = await dm(bridge, conn)
    with pytest.raises(error):
        await bridge.messaging.send_message(bob, conv, NewMessage("raced"), origin=Origin.NETWORK)
    assert await conn.fetchval("SELECT count(*) FROM message WHERE content = 'raced'") == 0
    assert await conn.fetchval("SELECT count(*) FROM notification") == 0
    assert await outbox_rows(conn) == []
    assert (
        await conn.fetchval("SELECT count(*) FROM ghost WHERE user_id = $1", bridge.ids.ghost(bob))
        == 0
    )
    assert wakes == []
