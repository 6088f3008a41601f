"""Replaying dead letters of each source, on the running bridge."""

from __future__ import annotations

import asyncpg

from bridge.app import DATABASE, OUTBOX
from bridge.matrix.outbox.actions import Send
from bridge.ops.dead_letters import DeadLetters
from tests.ops.bed import Bed, message, poll

BOT = "@_pn_bot:localhost"


async def test_a_dead_outbox_action_is_sent_again_once(bed: Bed, conn: asyncpg.Connection) -> None:
    room = bed.hs.add_room([BOT])
    bed.hs.fail("/send/", status=400, errcode="M_BAD_JSON", times=1)
    async with bed.app[DATABASE].transaction() as tx:
        row = await bed.app[OUTBOX].enqueue(
            tx,
            room,
            BOT,
            Send(
                room_id=room,
                event_type="m.room.message",
                content={"msgtype": "m.text", "body": "refused once"},
            ),
        )

    async def state_is(state: str) -> bool:
        return bool(await conn.fetchval("SELECT state FROM outbox WHERE id = $1", row) == state)

    await poll(lambda: state_is("dead"))
    letter = await conn.fetchval("SELECT id FROM dead_letter WHERE source = 'outbox'")
    letters = DeadLetters(bed.app[DATABASE], wake=lambda: None)
    (first,) = await letters.replay([letter])
    (second,) = await letters.replay([letter])
    assert (first.outcome, second.outcome) == ("replayed", "already replayed")
    await poll(lambda: state_is("sent"))
    bodies = [e.content.get("body") for e in bed.hs.rooms[room].timeline()]
    assert bodies.count("refused once") == 1
    shown = await letters.get(letter)
    assert shown is not None and shown.current_state == "sent" and shown.replayed_at


async def test_an_inbox_event_deleted_by_retention_is_replayed_from_the_letter(
    bed: Bed, conn: asyncpg.Connection
) -> None:
    bed.flaky.broken.add("$ops1")
    assert await bed.put_txn("1", [message(1)]) == 200

    async def dead() -> int | None:
        return await conn.fetchval("SELECT id FROM dead_letter WHERE event_id = '$ops1'")  # type: ignore[no-any-return]

    await poll(dead)
    await conn.execute("DELETE FROM inbox WHERE event_id = '$ops1'")  # as retention would
    bed.flaky.broken.clear()
    letters = DeadLetters(bed.app[DATABASE])
    (result,) = await letters.replay_all()
    assert result.outcome == "replayed"

    async def processed() -> bool:
        state = await conn.fetchval("SELECT state FROM inbox WHERE event_id = '$ops1'")
        return bool(state == "processed")

    await poll(processed)
    assert await letters.replay_all() == []
    assert await letters.replay([123456]) == [type(result)(123456, "not found")]
