"""A PostgreSQL server the bridge does not own, over TCP: TLS by URL, and wake-ups across
processes with LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import asyncpg
import pytest
from alembic import command

from bridge.db.database import Database
from bridge.db.schema import alembic_config, check_schema, ensure_schema, head_revision
from bridge.db.wakeups import INBOX_CHANNEL, OUTBOX_CHANNEL, WakeupListener
from tests.conftest import fresh_database
from tests.pg_tcp import TcpPostgres


def with_sslmode(dsn: str, sslmode: str) -> str:
    return re.sub(r"sslmode=\w+", f"sslmode={sslmode}", dsn)


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("sslmode", "encrypted"), [("require", True), ("disable", False)])
async def test_the_bridge_runs_on_a_server_over_tcp_with_sslmode_from_the_url(
    tcp_pg_server: TcpPostgres, sslmode: str, encrypted: bool
) -> None:
    async with fresh_database(tcp_pg_server, None) as dsn:
        dsn = with_sslmode(dsn, sslmode)
        if encrypted and not tcp_pg_server.tls:  # a build without TLS: require must refuse
            with pytest.raises(ConnectionError):
                await asyncpg.connect(dsn)
            return
        assert await ensure_schema(dsn, migrate=True) == head_revision()
        db = Database(dsn, min_size=1, max_size=2, application_name="bridge test")
        await db.open()
        try:
            async with db.acquire() as conn:
                assert await check_schema(conn) == head_revision()
                ssl = await conn.fetchval(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                )
                assert ssl is encrypted
                name = await conn.fetchval("SELECT current_setting('application_name')")
                assert name == "bridge test"
        finally:
            await db.close()


async def test_a_wrong_password_is_refused(tcp_pg_server: TcpPostgres) -> None:
    dsn = tcp_pg_server.dsn.replace(tcp_pg_server.password, "not-the-password")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(dsn)


async def insert_inbox(conn: asyncpg.Connection, event_id: str) -> None:
    await conn.execute(
        "INSERT INTO inbox (event_id, lane, kind, event_type, txn_id, event)"
        " VALUES ($1, '!r:localhost', 'pdu', 'm.room.message', 't1', $2::jsonb)",
        event_id,
        json.dumps({"event_id": event_id}),
    )


async def insert_outbox(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO outbox (lane, sender, action, payload)"
        " VALUES ('!r:localhost', '@_pn_bot:localhost', 'send', '{}'::jsonb)"
    )


async def test_commits_of_other_processes_wake_the_listener_and_its_own_do_not(
    tcp_dsn: str,
) -> None:
    woken = {INBOX_CHANNEL: 0, OUTBOX_CHANNEL: 0}

    def handler(channel: str) -> Callable[[], None]:
        def wake() -> None:
            woken[channel] += 1

        return wake

    listener = WakeupListener(
        tcp_dsn, "bridge worker A", {ch: handler(ch) for ch in woken}, keepalive=0.5
    )
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        await until(lambda: woken == {INBOX_CHANNEL: 1, OUTBOX_CHANNEL: 1})  # on connecting
        other = await asyncpg.connect(tcp_dsn, server_settings={"application_name": "intake B"})
        own = await asyncpg.connect(
            tcp_dsn, server_settings={"application_name": "bridge worker A"}
        )
        try:
            async with other.transaction():
                await insert_inbox(other, "$1")
                await insert_inbox(other, "$2")
            await until(lambda: woken[INBOX_CHANNEL] == 2)  # once per transaction
            await insert_outbox(other)
            await until(lambda: woken[OUTBOX_CHANNEL] == 2)
            async with other.transaction():
                await insert_outbox(other)
                await insert_outbox(other)
            await until(lambda: woken[OUTBOX_CHANNEL] == 3)
            # Its own commits: the process woke its workers in memory already.
            await insert_inbox(own, "$3")
            await insert_outbox(own)
            await insert_inbox(other, "$4")  # a marker that arrives after them
            await until(lambda: woken[INBOX_CHANNEL] == 3)
            assert woken == {INBOX_CHANNEL: 3, OUTBOX_CHANNEL: 3}
        finally:
            await other.close()
            await own.close()
    finally:
        await listener.stop()


async def test_a_rolled_back_insert_wakes_nobody(tcp_dsn: str) -> None:
    woken: list[str] = []
    listener = WakeupListener(tcp_dsn, "bridge worker", {OUTBOX_CHANNEL: lambda: woken.append("o")})
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        await until(lambda: woken == ["o"])
        conn = await asyncpg.connect(tcp_dsn)
        try:
            tx = conn.transaction()
            await tx.start()
            await insert_outbox(conn)
            await tx.rollback()
            await insert_outbox(conn)  # a marker: notifications arrive in commit order
            await until(lambda: len(woken) == 2)
        finally:
            await conn.close()
    finally:
        await listener.stop()


async def test_the_listener_reconnects_and_wakes_everyone_once_back(tcp_dsn: str) -> None:
    woken: list[str] = []
    listener = WakeupListener(
        tcp_dsn, "bridge worker", {INBOX_CHANNEL: lambda: woken.append("i")}, retry_delay=0.05
    )
    listener.start()
    admin = await asyncpg.connect(tcp_dsn)
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        await until(lambda: woken == ["i"])
        terminated = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'bridge worker') t"
        )
        assert terminated == 1
        await until(lambda: len(woken) == 2)  # reconnected: woken for what it may have missed
        await asyncio.wait_for(listener.listening.wait(), 10)
        await insert_inbox(admin, "$after")
        await until(lambda: len(woken) == 3)
    finally:
        await admin.close()
        await listener.stop()


async def test_revision_0007_goes_down_and_up_again(tcp_pg_server: TcpPostgres) -> None:
    async with fresh_database(tcp_pg_server, None) as dsn:
        config = alembic_config(dsn)
        await asyncio.to_thread(command.upgrade, config, "0007")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("INSERT INTO outbox_lane (lane) VALUES ('!r:localhost')")
            await asyncio.to_thread(command.downgrade, config, "0006")
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_trigger WHERE tgname IN ('inbox_notify', 'outbox_notify')"
                )
                == 0
            )
            await asyncio.to_thread(command.upgrade, config, "0007")
            row = await conn.fetchrow("SELECT lease, lease_owner FROM outbox_lane")
            assert (row["lease"], row["lease_owner"]) == (None, None)  # a free lane
        finally:
            await conn.close()
