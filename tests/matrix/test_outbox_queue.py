"""The outbox queue wakes the sender for every committed transaction that queued rows."""

from __future__ import annotations

import pytest

from bridge.db.database import Database
from bridge.matrix.outbox.actions import Send
from bridge.matrix.outbox.queue import OutboxQueue
from bridge.matrix.outbox.store import OutboxStore
from tests.matrix.test_outbox import db  # noqa: F401 (the fixture)

BOT = "@_pn_bot:localhost"
SEND = Send(room_id="!r:localhost", event_type="m.room.message", content={"body": "x"})


async def test_a_commit_without_rows_does_not_swallow_the_wake_of_one_still_open(
    db: Database,  # noqa: F811
) -> None:
    wakes: list[str] = []
    queue = OutboxQueue(OutboxStore())
    queue.wake_with(lambda: wakes.append("wake"))
    db.after_commit(queue.flush)
    async with db.transaction() as queueing:
        await queue.enqueue(queueing, "!r:localhost", BOT, SEND)
        async with db.transaction():
            pass  # another transaction commits meanwhile, having queued nothing
        assert wakes == []  # nothing of the open transaction is visible yet
    assert wakes == ["wake"]  # woken after the queueing transaction committed
    async with db.transaction():
        pass
    assert wakes == ["wake"]


async def test_a_rolled_back_enqueue_wakes_at_most_once_later(db: Database) -> None:  # noqa: F811
    wakes: list[str] = []
    queue = OutboxQueue(OutboxStore())
    queue.wake_with(lambda: wakes.append("wake"))
    db.after_commit(queue.flush)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with db.transaction() as conn:
            await queue.enqueue(conn, "!r:localhost", BOT, SEND)
            raise Rollback
    assert wakes == []
    for _ in range(3):
        async with db.transaction():
            pass
    assert len(wakes) <= 1
