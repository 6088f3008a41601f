"""Revision 0003 (query paths) on a database that already holds messages: the backfills."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command

from bridge.db.embedded import EmbeddedPostgres
from bridge.db.schema import alembic_config, current_revision
from tests.conftest import fresh_database


async def test_0003_backfills_counts_and_deletion_conversations(
    pg_server: EmbeddedPostgres,
) -> None:
    async with fresh_database(pg_server, None) as dsn:
        await asyncio.to_thread(command.upgrade, alembic_config(dsn), "0002")
        conn = await asyncpg.connect(dsn)
        try:
            ann, bob = uuid.uuid4(), uuid.uuid4()
            busy, quiet = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                "INSERT INTO network_user (id, display_name) VALUES ($1, 'Ann'), ($2, 'Bob')",
                ann,
                bob,
            )
            await conn.execute(
                "INSERT INTO conversation (id, is_group) VALUES ($1, true), ($2, true)",
                busy,
                quiet,
            )
            ids = [uuid.uuid4() for _ in range(4)]
            for n, message_id in enumerate(ids):
                await conn.execute(
                    "INSERT INTO message (id, conversation_id, sender_id, content, sent_at, "
                    "is_active, origin) VALUES ($1, $2, $3, 'x', now(), $4, 'network')",
                    message_id,
                    busy,
                    ann,
                    n != 0,  # the first one deleted for everyone
                )
            await conn.execute(
                "INSERT INTO message_deletion (message_id, user_id) VALUES ($1, $2), ($3, $2)",
                ids[1],
                bob,
                ids[2],
            )
            await asyncio.to_thread(command.upgrade, alembic_config(dsn), "0003")
            assert await current_revision(conn) == "0003"
            counts = dict(await conn.fetch("SELECT id, message_count FROM conversation"))
            assert counts == {busy: 3, quiet: 0}
            deletions = await conn.fetch("SELECT DISTINCT conversation_id FROM message_deletion")
            assert [r[0] for r in deletions] == [busy]
            indexes = await conn.fetch(
                "SELECT indexdef FROM pg_indexes WHERE indexname IN "
                "('message_deletion_user_conversation_idx', 'message_conversation_sent_idx')"
            )
            assert len(indexes) == 2
            assert any("INCLUDE (is_active)" in r[0] for r in indexes)
            # And back: 0003 downgrades cleanly.
            await asyncio.to_thread(command.downgrade, alembic_config(dsn), "0002")
            columns = await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE column_name = 'message_count' OR "
                "(table_name = 'message_deletion' AND column_name = 'conversation_id')"
            )
            assert columns == 0
        finally:
            await conn.close()
