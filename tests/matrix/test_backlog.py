"""Back-pressure: a transaction is stored at once but answered only when processing caught up."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

import asyncpg
import pytest

from bridge.config import InboxConfig
from bridge.db.database import Database
from bridge.matrix.inbox.backlog import Backlog
from bridge.matrix.inbox.dispatch import Dispatcher
from bridge.matrix.inbox.intake import IntakeService
from bridge.matrix.inbox.processor import InboxProcessor
from bridge.matrix.inbox.store import InboxStore
from tests.matrix.test_inbox import Effects, db, incoming, setup_effects  # noqa: F401


async def _yield_to_others(times: int = 20) -> None:
    """Let every other ready task run (a yield, not a wait for time to pass)."""
    for _ in range(times):
        await asyncio.sleep(0)


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 (yields to the task under test; bounded by wait_for)
        await asyncio.sleep(0)


async def test_under_the_limit_nothing_waits() -> None:
    backlog = Backlog(limit=10, max_hold=30)
    backlog.added(10)
    await asyncio.wait_for(backlog.wait_for_room(), 1)  # at the limit is within it
    assert backlog.holds == 0


async def test_over_the_limit_the_answer_waits_for_the_workers() -> None:
    backlog = Backlog(limit=10, max_hold=30)
    backlog.added(25)
    waiting = asyncio.create_task(backlog.wait_for_room())
    await _yield_to_others()
    assert not waiting.done()
    backlog.finished(10)  # 15 left: still over
    await _yield_to_others()
    assert not waiting.done()
    backlog.finished(5)
    await asyncio.wait_for(waiting, 1)
    assert backlog.holds == 1 and backlog.pending == 10


async def test_the_hold_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    backlog = Backlog(limit=1, max_hold=0.05)
    backlog.added(2)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(backlog.wait_for_room(), 5)
    assert "answering the homeserver anyway" in caplog.text
    assert backlog.pending == 2  # nothing was lost or forgotten


async def test_no_limit_never_holds() -> None:
    backlog = Backlog(limit=0, max_hold=30)
    backlog.added(1_000_000)
    await asyncio.wait_for(backlog.wait_for_room(), 1)


async def test_intake_commits_first_and_answers_when_processing_caught_up(
    db: Database,  # noqa: F811
    conn: asyncpg.Connection,
) -> None:
    await setup_effects(conn)
    backlog = Backlog(limit=5, max_hold=30)
    dispatcher = Dispatcher()
    dispatcher.register("m.room.message", Effects())
    settings = InboxConfig(workers=1, batch_size=100, max_attempts=3, retry_delay=60.0)
    processor = InboxProcessor(db, InboxStore(), dispatcher, settings, backlog=backlog)
    intake = IntakeService(db, InboxStore(), lambda: None, backlog)
    await processor.drain()  # the first count comes from the database: none pending
    events = [incoming(n, room=f"!r{n % 3}:localhost") for n in range(12)]
    answer = asyncio.create_task(intake.receive("t1", hashlib.sha256(b"t1").digest(), events, []))
    await asyncio.wait_for(_until(lambda: backlog.pending == 12), 5)  # counted once committed
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'") == 12
    await _yield_to_others()
    assert not answer.done()
    await processor.drain()
    assert await asyncio.wait_for(answer, 5) == 12
    assert backlog.pending == 0
    assert await conn.fetchval("SELECT count(*) FROM effects") == 12


async def test_the_first_count_includes_events_from_before_a_restart(
    db: Database,  # noqa: F811
    conn: asyncpg.Connection,
) -> None:
    await setup_effects(conn)
    earlier = IntakeService(db, InboxStore(), lambda: None)  # a run that stopped with a backlog
    await earlier.receive("t0", hashlib.sha256(b"t0").digest(), [incoming(n) for n in range(8)], [])
    backlog = Backlog(limit=5, max_hold=30)
    dispatcher = Dispatcher()
    dispatcher.register("m.room.message", Effects())
    settings = InboxConfig(workers=1, batch_size=2, max_attempts=3, retry_delay=60.0)
    processor = InboxProcessor(db, InboxStore(), dispatcher, settings, backlog=backlog)
    assert await processor.run_once()
    assert backlog.pending == 6  # counted 8 from the database, then finished 2
    await processor.drain()
    assert backlog.pending == 0


async def test_without_workers_in_the_process_the_hold_ends_when_the_database_says_so() -> None:
    """An intake process: no worker tells it of finished events; it re-reads the count."""
    in_database = [50]
    reads = 0

    async def recount() -> int:
        nonlocal reads
        reads += 1
        return in_database[0]

    backlog = Backlog(limit=10, max_hold=30, recount=recount, recount_interval=0.01)
    backlog.added(50)
    holders = [asyncio.create_task(backlog.wait_for_room()) for _ in range(3)]
    await asyncio.wait_for(_until(lambda: reads >= 2), 5)
    assert not any(h.done() for h in holders)
    in_database[0] = 4  # workers elsewhere caught up
    await asyncio.wait_for(asyncio.gather(*holders), 5)
    assert backlog.pending == 4 and backlog.holds == 3


async def test_a_count_grown_only_here_is_read_again_before_anything_is_held() -> None:
    """An intake process adds what it stores and never hears what workers elsewhere finished:
    over its limit by its own count, it asks the database before holding an answer."""
    reads = 0

    async def recount() -> int:
        nonlocal reads
        reads += 1
        return 4

    backlog = Backlog(limit=10, max_hold=30, recount=recount, recount_interval=30)
    backlog.added(50)
    await asyncio.wait_for(backlog.wait_for_room(), 1)
    assert reads == 1 and backlog.holds == 0 and backlog.pending == 4
