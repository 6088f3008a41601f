"""Crash safety: the bridge is killed (or stopped) mid-stream and restarted; nothing is lost or
processed twice."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import asyncpg
import pytest
from mautrix.appservice import IntentAPI
from mautrix.client import ClientAPI

from tests.e2e.bed import (
    BridgeProcess,
    Inbox,
    MessageStream,
    SynapseProcess,
    assert_once_in_order,
    nudge_recovery,
    portal_room,
    wait_delivered,
    wait_until,
)

pytestmark = pytest.mark.e2e


@dataclass
class Restart:
    sent: list[str]
    sent_at_stop: int
    exit_status: int | None
    last_inbox_id_at_stop: int
    in_room_at_stop: int


async def restart_mid_stream(
    *,
    alice: ClientAPI,
    bot: IntentAPI,
    bridge: BridgeProcess,
    inbox: Inbox,
    room_id: str,
    messages: int,
    stop_after: int,
    kill: bool,
) -> Restart:
    """Send ``messages`` in the background; after ``stop_after``, stop the bridge and start it."""
    stream = MessageStream(alice, room_id, messages)
    sending = asyncio.create_task(stream.run())
    try:
        await asyncio.wait_for(stream.reached(stop_after).wait(), 120)
        if sending.done():
            sending.result()  # the stream ended early: raise what stopped it

        status = bridge.kill() if kill else await bridge.astop()
        sent_at_stop = len(stream.sent)
        if kill:
            # Its PostgreSQL outlives it (the next bridge adopts it): look at the inbox now.
            last_id = await inbox.fetchval("SELECT coalesce(max(id), 0) FROM inbox")
            in_room = await inbox.fetchval(
                "SELECT count(*) FROM inbox WHERE lane = $1 AND event_type = 'm.room.message'",
                room_id,
            )
        else:
            # A clean shutdown stops the embedded PostgreSQL too.
            assert not (bridge.data_dir / "postmaster.pid").exists()
            last_id = in_room = -1  # not readable while it is down

        await bridge.astart()  # on the same config and data directory
        # Synapse marked the bridge down while it was away; a successful ping (which bridges
        # commonly send when they start; this one does not yet) makes it resend the held
        # transactions now rather than after its back-off (2, 4, 8 ... 512 s).
        await nudge_recovery(bot, f"e2e-after-restart-{secrets.token_hex(4)}")

        sent = await asyncio.wait_for(sending, 300)
    finally:
        if not sending.done():
            sending.cancel()
    assert len(sent) == messages and len(set(sent)) == messages
    assert sent_at_stop < messages, "the stream ended before the stop: nothing was tested"
    return Restart(sent, sent_at_stop, status, last_id, in_room)


async def assert_exactly_once(
    inbox: Inbox, homeserver: SynapseProcess, room_id: str, sent: list[str]
) -> list[asyncpg.Record]:
    delivery = await wait_delivered(inbox, homeserver, sent, within=180)

    # Every event the client got an id for is in the inbox exactly once, in the order sent,
    # processed once without failures (save those Synapse itself never sent: see
    # wait_delivered) ...
    delivered = assert_once_in_order(delivery, sent)
    in_room = await inbox.fetch(
        "SELECT event_id, count(*) AS n FROM inbox "
        "WHERE lane = $1 AND event_type = 'm.room.message' GROUP BY event_id",
        room_id,
    )
    assert {r["event_id"]: r["n"] for r in in_room} == dict.fromkeys(delivered, 1)
    # ... nothing dead-lettered.
    assert not await inbox.fetch(
        "SELECT event_id FROM dead_letter WHERE event_id = ANY($1::text[])", sent
    )

    # The room's lane is released once its events are done: none is left claimed by the
    # stopped process, nothing stays pending.
    async def room_idle() -> bool:
        pending = await inbox.fetchval(
            "SELECT count(*) FROM inbox WHERE lane = $1 AND state = 'pending'", room_id
        )
        lanes = await inbox.fetchval("SELECT count(*) FROM inbox_lane WHERE lane = $1", room_id)
        return bool(pending == 0 and lanes == 0)

    await wait_until(room_idle, within=30, what="the room's inbox lane to be released")
    return delivery.rows


async def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    alice: ClientAPI,
    appservice: IntentAPI,
    homeserver: SynapseProcess,
    bridge: BridgeProcess,
    inbox: Inbox,
) -> None:
    room_id = await portal_room(alice, appservice, "crash safety")

    run = await restart_mid_stream(
        alice=alice,
        bot=appservice,
        bridge=bridge,
        inbox=inbox,
        room_id=room_id,
        messages=500,
        stop_after=150,
        kill=True,
    )

    assert run.exit_status == -9, f"the bridge did not die of SIGKILL (status {run.exit_status})"
    assert run.in_room_at_stop < 500
    rows = await assert_exactly_once(inbox, homeserver, room_id, run.sent)
    # Some of the stream reached the bridge only after the restart.
    assert any(r["id"] > run.last_inbox_id_at_stop for r in rows)


async def test_sigterm_mid_stream_shuts_down_cleanly_and_loses_nothing(
    alice: ClientAPI,
    appservice: IntentAPI,
    homeserver: SynapseProcess,
    bridge: BridgeProcess,
    inbox: Inbox,
) -> None:
    room_id = await portal_room(alice, appservice, "graceful restart")

    run = await restart_mid_stream(
        alice=alice,
        bot=appservice,
        bridge=bridge,
        inbox=inbox,
        room_id=room_id,
        messages=200,
        stop_after=60,
        kill=False,
    )

    assert run.exit_status == 0, f"the bridge exited with {run.exit_status} on SIGTERM"
    await assert_exactly_once(inbox, homeserver, room_id, run.sent)
