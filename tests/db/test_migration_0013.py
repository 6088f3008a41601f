"""Revision 0013 (unread total): the count behind ``unreadBy`` reads the index only."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
from alembic import command

from bridge.db.embedded import EmbeddedPostgres
from bridge.db.schema import alembic_config
from tests.conftest import fresh_database

#: The shape of the ``unreadBy`` total for one reader (``bridge.messaging.queries``).
UNREAD_TOTAL = (
    "SELECT count(*) FROM message m WHERE m.conversation_id = $1 AND m.is_active "
    "AND m.sender_id <> $2 AND m.sent_at > '-infinity'::timestamptz"
)


async def _scan(conn: asyncpg.Connection, conversation: uuid.UUID, reader: uuid.UUID) -> str:
    """The node that reads ``message`` in the plan of the unread total."""
    await conn.execute("VACUUM ANALYZE message")  # a visibility map, as a live table has
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = json.loads(
            await conn.fetchval(f"EXPLAIN (FORMAT JSON) {UNREAD_TOTAL}", conversation, reader)
        )
    node = plan[0]["Plan"]
    while node.get("Relation Name") != "message":
        node = node["Plans"][0]
    return f"{node['Node Type']} using {node['Index Name']}"


async def test_0013_makes_the_unread_total_index_only(pg_server: EmbeddedPostgres) -> None:
    async with fresh_database(pg_server, None) as dsn:
        config = alembic_config(dsn)
        await asyncio.to_thread(command.upgrade, config, "0012")
        conn = await asyncpg.connect(dsn)
        try:
            ann, bob, chat = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                "INSERT INTO network_user (id, display_name) VALUES ($1, 'Ann'), ($2, 'Bob')",
                ann,
                bob,
            )
            await conn.execute("INSERT INTO conversation (id, is_group) VALUES ($1, true)", chat)
            await conn.execute(
                "INSERT INTO message (id, conversation_id, sender_id, content, sent_at, origin) "
                "SELECT gen_random_uuid(), $1, CASE WHEN n % 2 = 0 THEN $2::uuid ELSE $3::uuid END, "
                "'x', now() + n * interval '1 second', 'network' FROM generate_series(1, 200) n",
                chat,
                ann,
                bob,
            )
            before = await _scan(conn, chat, ann)
            await asyncio.to_thread(command.upgrade, config, "0013")
            after = await _scan(conn, chat, ann)
            total = await conn.fetchval(UNREAD_TOTAL, chat, ann)
        finally:
            await conn.close()
    assert not before.startswith("Index Only Scan")  # no index had the senders: the table read
    assert after == "Index Only Scan using message_conversation_sent_idx"
    assert total == 100
