"""Retention: what is past its time goes, chunk by chunk; what may still matter stays."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import pytest

from bridge.db.database import Database
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.schema import alembic_config
from bridge.matrix import retention as retention_module
from bridge.matrix.inbox.intake import IntakeService
from bridge.matrix.inbox.store import InboxStore
from bridge.matrix.outbox.actions import Leave
from bridge.matrix.outbox.store import OutboxStore
from bridge.matrix.retention import Retention
from tests.conftest import fresh_database
from tests.matrix.test_inbox import Effects, db, incoming, processor, setup_effects  # noqa: F401


async def _age(conn: asyncpg.Connection, table: str, column: str, where: str, days: int) -> None:
    await conn.execute(
        f"UPDATE {table} SET {column} = {column} - make_interval(days => {days}) WHERE {where}"
    )


async def test_old_finished_rows_go_and_everything_else_stays(
    db: Database,  # noqa: F811
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention_module, "_CHUNK", 3)  # several chunks per table
    await setup_effects(conn)
    intake = IntakeService(db, InboxStore(), lambda: None)
    await intake.receive(
        "old", hashlib.sha256(b"old").digest(), [incoming(n) for n in range(10)], []
    )
    await processor(db, Effects()).drain()
    await intake.receive(
        "new", hashlib.sha256(b"new").digest(), [incoming(n) for n in range(10, 14)], []
    )
    await processor(db, Effects()).drain()
    await intake.receive(
        "waiting", hashlib.sha256(b"w").digest(), [incoming(99, room="!b:localhost")], []
    )
    await _age(
        conn, "inbox", "received_at", "event_id <> ALL(ARRAY['$e10','$e11','$e12','$e13'])", 8
    )
    await _age(conn, "appservice_txn", "received_at", "txn_id IN ('old', 'waiting')", 8)
    async with db.transaction() as c:
        store = OutboxStore()
        sent, dead, queued = [
            await store.enqueue(
                c, "!a:localhost", "@bot:localhost", Leave(room_id="!a:localhost", reason=str(n))
            )
            for n in range(3)
        ]
    await conn.execute("UPDATE outbox SET state = 'sent', sent_at = now() WHERE id = $1", sent)
    await conn.execute("UPDATE outbox SET state = 'dead' WHERE id = $1", dead)
    await _age(conn, "outbox", "created_at", "true", 8)

    deleted = await Retention(db, InboxStore(), OutboxStore(), keep_days=7).purge()

    assert deleted == 10 + 2 + 1
    remaining = {
        r["event_id"]: r["state"] for r in await conn.fetch("SELECT event_id, state FROM inbox")
    }
    assert remaining == {
        "$e10": "processed",
        "$e11": "processed",
        "$e12": "processed",
        "$e13": "processed",
        "$e99": "pending",
    }  # recent, or not yet processed
    assert [r[0] for r in await conn.fetch("SELECT txn_id FROM appservice_txn")] == ["new"]
    assert {r["id"] for r in await conn.fetch("SELECT id FROM outbox")} == {dead, queued}
    assert await conn.fetchval("SELECT count(*) FROM effects") == 14  # domain rows untouched
    # A recent transaction, resent, is still known: nothing is stored twice.
    assert (
        await intake.receive(
            "new", hashlib.sha256(b"new").digest(), [incoming(n) for n in range(10, 14)], []
        )
        == 0
    )


async def test_keeping_forever_starts_no_purge(db: Database) -> None:  # noqa: F811
    keep = Retention(db, InboxStore(), OutboxStore(), keep_days=0)
    keep.start()
    assert not keep.running
    purging = Retention(db, InboxStore(), OutboxStore(), keep_days=7)
    purging.start()
    assert purging.running
    await purging.stop()
    assert not purging.running


async def test_revision_0004_moves_the_indexes_and_back(pg_server: EmbeddedPostgres) -> None:
    from alembic import command

    async with fresh_database(pg_server, None) as dsn:
        await asyncio.to_thread(command.upgrade, alembic_config(dsn), "0004")
        conn = await asyncpg.connect(dsn)
        try:
            names = "('inbox_processed_at_idx', 'appservice_txn_received_idx')"
            query = f"SELECT indexname FROM pg_indexes WHERE indexname IN {names}"
            assert {r[0] for r in await conn.fetch(query)} == {"appservice_txn_received_idx"}
            await asyncio.to_thread(command.downgrade, alembic_config(dsn), "0003")
            assert {r[0] for r in await conn.fetch(query)} == {"inbox_processed_at_idx"}
        finally:
            await conn.close()


async def _tuples_read(conn: asyncpg.Connection, table: str) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    return int(
        await conn.fetchval(
            "SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = $1",
            table,
        )
    )


async def test_a_purge_reads_only_the_old_rows(db: Database, conn: asyncpg.Connection) -> None:  # noqa: F811
    await conn.execute(
        """
        INSERT INTO inbox (event_id, lane, kind, event_type, sender, txn_id, event, state, received_at)
        SELECT '$young' || n, '!a:localhost', 'pdu', 'm.room.message', '@u:localhost', 't', '{}',
               'processed', now() - make_interval(secs => 3000 - n)
        FROM generate_series(1, 2000) AS n
        """
    )
    await conn.execute("ANALYZE inbox")
    before = await _tuples_read(conn, "inbox")
    async with db.transaction() as c:
        await c.execute("SELECT pg_stat_force_next_flush()")  # this backend's counts, at commit
        assert await InboxStore().purge_finished(c, 7, 5000) == 0
    assert await _tuples_read(conn, "inbox") - before < 20  # not the 2,000 young rows
    # Old rows in front are found and go, the young ones stay.
    await conn.execute(
        "UPDATE inbox SET received_at = received_at - interval '8 days' WHERE event_id IN ('$young1', '$young2', '$young3')"
    )
    async with db.transaction() as c:
        assert await InboxStore().purge_finished(c, 7, 5000) == 3
    assert await conn.fetchval("SELECT count(*) FROM inbox") == 1997
