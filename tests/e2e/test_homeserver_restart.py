"""Synapse restarted mid-stream: nothing lost or doubled, though its transaction ids restart."""

from __future__ import annotations

import asyncio
import sqlite3
import warnings

import pytest
from mautrix.appservice import IntentAPI
from mautrix.client import ClientAPI

from tests.e2e.bed import (
    BridgeProcess,
    Inbox,
    MessageStream,
    SynapseProcess,
    assert_once_in_order,
    portal_room,
    wait_delivered,
    wait_until,
)

pytestmark = pytest.mark.e2e

MESSAGES = 300
RESTART_AFTER = 100


async def assert_room_holds(inbox: Inbox, room_id: str, delivered: list[str]) -> None:
    """The room's messages in the inbox are exactly ``delivered``, once each."""
    in_room = await inbox.fetch(
        "SELECT event_id, count(*) AS n FROM inbox "
        "WHERE lane = $1 AND event_type = 'm.room.message' GROUP BY event_id",
        room_id,
    )
    assert {r["event_id"]: r["n"] for r in in_room} == dict.fromkeys(delivered, 1)
    assert not await inbox.fetch(
        "SELECT event_id FROM dead_letter WHERE event_id = ANY($1::text[])", delivered
    )


async def test_homeserver_restart_mid_stream_loses_and_duplicates_nothing(
    alice: ClientAPI,
    appservice: IntentAPI,
    homeserver: SynapseProcess,
    bridge: BridgeProcess,
    inbox: Inbox,
) -> None:
    room_id = await portal_room(alice, appservice, "homeserver restart")
    stream = MessageStream(alice, room_id, MESSAGES, homeserver=homeserver)
    sending = asyncio.create_task(stream.run())
    try:
        await asyncio.wait_for(stream.reached(RESTART_AFTER).wait(), 120)
        if sending.done():
            sending.result()  # the stream ended early: raise what stopped it

        await homeserver.astop()  # SIGTERM, as a service manager would
        sent_at_stop = len(stream.sent)
        # How far Synapse had handed events on to its AS queue, and what the bridge had then.
        position = homeserver.appservice_position()
        bridge_had = {r["event_id"] for r in await inbox.rows_for(list(stream.sent))}
        # With SQLite, Synapse's next transaction id is 1 + the highest id it still holds
        # unsent (completed transactions are deleted), so after a restart ids start over.
        unsent = homeserver.unsent_transactions()
        next_txn_id = max(unsent, default=0) + 1
        restart_mark = await inbox.fetchval("SELECT clock_timestamp()")
        highest_before = await inbox.fetchval(
            "SELECT max(txn_id::bigint) FROM appservice_txn WHERE txn_id ~ '^[0-9]+$'"
        )
        await homeserver.astart()

        sent = await asyncio.wait_for(sending, 300)
    finally:
        if not sending.done():
            sending.cancel()

    assert len(sent) == MESSAGES and len(set(sent)) == MESSAGES
    assert sent_at_stop < MESSAGES, "the stream ended before the restart: nothing was tested"
    assert stream.retried > 0, "no send met the outage: the restart was not mid-stream"

    # After a restart Synapse hands on again the events past its stored position. Those up to
    # it that the bridge did not have yet were in Synapse's memory or in a transaction in
    # flight; Synapse may drop them (element-hq/synapse#11637). They can only be the newest
    # it had handed on (its queue is first in, first out), and nothing else may be missing.
    ordering = homeserver.stream_orderings(sent)
    assert set(ordering) == set(sent)
    handed_on = [e for e in sent if ordering[e] <= position]
    at_risk = [e for e in handed_on if e not in bridge_had]
    assert handed_on[len(handed_on) - len(at_risk) :] == at_risk, "a gap before the restart"

    delivery = await wait_delivered(inbox, homeserver, sent, within=180, excused=at_risk)
    if delivery.dropped:
        warnings.warn(
            f"Synapse dropped {len(delivery.dropped)} event(s) it had queued for the bridge "
            f"when it stopped, never sending them (element-hq/synapse#11637): "
            f"{delivery.dropped}",
            stacklevel=1,
        )

    # Every event Synapse delivered is in the inbox once, in the order sent, processed.
    delivered = assert_once_in_order(delivery, sent)
    await assert_room_holds(inbox, room_id, delivered)

    # What the bridge recorded of the transactions: after the restart Synapse's ids start over
    # at next_txn_id (or it first resends what it still held); an id it had used before is
    # then recorded twice, with different bodies.
    after = await inbox.fetch(
        "SELECT txn_id FROM appservice_txn WHERE received_at > $1 ORDER BY received_at",
        restart_mark,
    )
    assert after, "no transaction reached the bridge after the restart"
    assert int(after[0]["txn_id"]) in {next_txn_id, *unsent}
    if highest_before is not None and next_txn_id <= highest_before:
        await assert_txn_id_reused(inbox, str(next_txn_id), restart_mark)


async def assert_txn_id_reused(inbox: Inbox, txn_id: str, restart_mark: object) -> None:
    reused = await inbox.fetch(
        "SELECT body_sha256, received_at FROM appservice_txn WHERE txn_id = $1", txn_id
    )
    assert len({r["body_sha256"] for r in reused}) == len(reused) >= 2, reused
    assert any(r["received_at"] < restart_mark for r in reused)
    assert any(r["received_at"] > restart_mark for r in reused)


async def test_homeserver_restart_when_idle_reuses_txn_ids_and_loses_nothing(
    alice: ClientAPI,
    appservice: IntentAPI,
    homeserver: SynapseProcess,
    bridge: BridgeProcess,
    inbox: Inbox,
) -> None:
    room_id = await portal_room(alice, appservice, "homeserver restart when idle")
    # Transactions Synapse may hold from earlier trouble (it never sends them while it deems
    # the bridge up): they stay, and set where its ids go on from after a restart.
    held_before = set(homeserver.unsent_transactions())
    before = await MessageStream(alice, room_id, 5).run()
    await wait_delivered(inbox, homeserver, before, within=60)

    # Stop Synapse once it has completed every transaction of ours.
    for _attempt in range(3):

        async def idle() -> bool:
            try:
                return set(homeserver.unsent_transactions()) <= held_before
            except sqlite3.OperationalError:  # busy: look again
                return False

        await wait_until(idle, within=30, what="Synapse to complete its transactions")
        await homeserver.astop()
        unsent = homeserver.unsent_transactions()
        if set(unsent) <= held_before:
            break
        await homeserver.astart()  # one was in flight as it stopped: try again
    else:
        pytest.fail("Synapse always held a transaction of ours when stopped")
    # Its next id: 1, or the one after what it still holds; either way one it has used before
    # (the five messages above went out after those).
    next_txn_id = max(unsent, default=0) + 1
    restart_mark = await inbox.fetchval("SELECT clock_timestamp()")
    highest_before = await inbox.fetchval(
        "SELECT max(txn_id::bigint) FROM appservice_txn WHERE txn_id ~ '^[0-9]+$'"
    )
    assert next_txn_id <= highest_before
    await homeserver.astart()

    after = await MessageStream(alice, room_id, 5).run()
    delivery = await wait_delivered(inbox, homeserver, before + after, within=60)

    delivered = assert_once_in_order(delivery, before + after)
    assert delivered == before + after
    await assert_room_holds(inbox, room_id, delivered)
    # Synapse went on from next_txn_id (after resending what it held, if it had us down) ...
    ids_after = [
        r["txn_id"]
        for r in await inbox.fetch(
            "SELECT txn_id FROM appservice_txn WHERE received_at > $1 ORDER BY received_at",
            restart_mark,
        )
    ]
    fresh = [int(t) for t in ids_after if int(t) not in unsent]
    assert fresh and fresh[0] == next_txn_id, ids_after
    # ... so the bridge recorded that id twice, with different bodies, once on each side of
    # the restart, and took the new events although their transaction ids had been seen.
    await assert_txn_id_reused(inbox, str(next_txn_id), restart_mark)
    seen_before = {
        r["txn_id"]
        for r in await inbox.fetch(
            "SELECT txn_id FROM appservice_txn WHERE received_at < $1", restart_mark
        )
    }
    new_rows = [r for r in delivery.rows if r["event_id"] in set(after)]
    assert any(r["txn_id"] in seen_before for r in new_rows)
