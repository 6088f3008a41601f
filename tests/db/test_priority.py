"""The worker role's lower CPU priority: its process, and its sessions on a local server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import asyncpg

from bridge.db.database import Database
from bridge.db.priority import SessionPriority, _started_here, lower_process_priority
from bridge.matrix.inbox.intake import IntakeService
from bridge.matrix.inbox.store import InboxStore
from tests.matrix.test_inbox import incoming


def test_a_process_is_given_the_nice_value_and_never_a_higher_priority() -> None:
    target = min(os.getpriority(os.PRIO_PROCESS, 0) + 2, 19)  # the child starts at ours
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert lower_process_priority(target, child.pid)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == target
        assert lower_process_priority(target - 2, child.pid)  # already lower: left alone
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == target
    finally:
        child.kill()
        child.wait()
    assert not lower_process_priority(target, child.pid)  # gone


def test_only_a_postgres_process_counts_as_a_session_here() -> None:
    assert _started_here(os.getpid()) is None  # this is python, whatever its pid says


async def test_a_pool_reniced_its_sessions_on_the_local_server(dsn: str) -> None:
    plain = await asyncpg.connect(dsn)  # a session of anybody else keeps its priority
    try:
        base = os.getpriority(os.PRIO_PROCESS, plain.get_server_pid())  # the server's own
        target = min(base + 4, 19)
        db = Database(dsn, min_size=2, max_size=2, on_connect=SessionPriority(target))
        await db.open()
        try:
            async with db.acquire() as a, db.acquire() as b:
                pids = [a.get_server_pid(), b.get_server_pid()]
            assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in pids] == [target] * 2
        finally:
            await db.close()
        assert os.getpriority(os.PRIO_PROCESS, plain.get_server_pid()) == base
    finally:
        await plain.close()


async def test_a_batch_claimed_without_flush_commits_without_waiting_for_the_disk(
    dsn: str,
) -> None:
    db = Database(dsn)
    await db.open()
    store = InboxStore()
    try:
        intake = IntakeService(db, store, lambda: None)
        await intake.receive("t", hashlib.sha256(b"t").digest(), [incoming(1), incoming(2)], [])
        async with db.acquire() as conn:
            for flush, during in ((True, "on"), (False, "off")):
                async with conn.transaction():
                    assert await store.claim_lanes(conn, 1, flush_commit=flush)
                    assert await conn.fetchval("SHOW synchronous_commit") == during
                # For this transaction only: the session's setting is back.
                assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await db.close()
