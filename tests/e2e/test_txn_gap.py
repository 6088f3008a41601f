"""A transaction Synapse created but never sent (its sender/recoverer race), healed.

Reproduced deterministically: with Synapse stopped, a transaction row holding an event is put
in its ``application_services_txns`` while the service is marked up, the state the race leaves
behind. Synapse then numbers its next transaction after it and never sends it. The bridge sees
the skipped id, waits its grace period, refuses the next transaction (503), and Synapse's
recoverer sends the oldest unsent transaction first: the stranded one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator

import pytest
from mautrix.appservice import IntentAPI
from mautrix.client import ClientAPI
from mautrix.types import EventType, MessageType, RoomID, TextMessageEventContent

from tests.e2e.bed import (
    APPSERVICE_ID,
    BridgeProcess,
    Inbox,
    SynapseProcess,
    portal_room,
    tail,
    wait_until,
)

pytestmark = pytest.mark.e2e

GRACE = 3.0
#: Bound for the whole heal: grace, the checker's period, Synapse's first retry (2 s), slack.
HEAL_WITHIN = 90.0
_OVERRIDES = {
    "BRIDGE_APPSERVICE__TRANSACTION_GAPS__GRACE": str(GRACE),
    "BRIDGE_APPSERVICE__TRANSACTION_GAPS__CHECK_INTERVAL": "0.5",
}


@pytest.fixture
def short_grace(bridge: BridgeProcess) -> Iterator[BridgeProcess]:
    """The bridge restarted with a short grace period; restored afterwards."""
    bridge.env.update(_OVERRIDES)
    bridge.restart()
    try:
        yield bridge
    finally:
        for key in _OVERRIDES:
            bridge.env.pop(key, None)
        bridge.restart()


async def send(client: ClientAPI, room_id: RoomID, body: str) -> str:
    content = TextMessageEventContent(msgtype=MessageType.TEXT, body=body)
    return str(await client.send_message_event(room_id, EventType.ROOM_MESSAGE, content))


def strand(homeserver: SynapseProcess, txn_id: int, event_ids: list[str]) -> None:
    """Leave an unsent transaction in Synapse's table with the service marked up."""
    with contextlib.closing(sqlite3.connect(homeserver.db_path, timeout=30)) as db:
        db.execute(
            "INSERT INTO application_services_txns (as_id, txn_id, event_ids) VALUES (?, ?, ?)",
            (APPSERVICE_ID, txn_id, json.dumps(event_ids)),
        )
        db.execute(
            "UPDATE application_services_state SET state = 'up' WHERE as_id = ?",
            (APPSERVICE_ID,),
        )
        db.commit()


async def test_a_stranded_transaction_is_resent_and_its_event_arrives(
    alice: ClientAPI,
    appservice: IntentAPI,
    homeserver: SynapseProcess,
    short_grace: BridgeProcess,
    inbox: Inbox,
) -> None:
    bridge = short_grace
    room_id = await portal_room(alice, appservice, "transaction gap")
    # An event Synapse would never push to the bridge (a room without any of its users): only
    # the stranded transaction can bring it.
    private = await alice.create_room(name="not bridged")
    stranded_event = await send(alice, private, "only in the stranded transaction")
    first = await send(alice, room_id, "before the gap")
    await inbox.wait_processed([first], within=60)
    high = int(await inbox.fetchval("SELECT high FROM txn_watch"))

    await homeserver.astop()
    stranded = max([high, *homeserver.unsent_transactions()]) + 1
    strand(homeserver, stranded, [stranded_event])
    await homeserver.astart()
    offset = bridge.log_offset()
    started = time.monotonic()

    # Synapse's next transaction comes after the stranded one: the bridge sees the gap.
    after_gap = await send(alice, room_id, "after the gap")
    await inbox.wait_processed([after_gap], within=60)
    assert await inbox.fetchval("SELECT state FROM txn_gap WHERE missing_id = $1", stranded) in (
        "open",
        "due",
    )
    assert stranded in homeserver.unsent_transactions(), "Synapse sent it after all"

    async def due() -> bool:
        state = await inbox.fetchval("SELECT state FROM txn_gap WHERE missing_id = $1", stranded)
        return bool(state == "due")

    await wait_until(due, within=GRACE + 30, what=f"gap {stranded} due")
    # The next transaction is refused; the recoverer sends the stranded one first.
    trigger = await send(alice, room_id, "the transaction that is refused once")
    rows = await inbox.wait_processed([stranded_event, trigger], within=HEAL_WITHIN)
    healed_in = time.monotonic() - started
    by_event = {r["event_id"]: r for r in rows}
    assert by_event[stranded_event]["txn_id"] == str(stranded)

    async def healed() -> bool:
        state = await inbox.fetchval("SELECT state FROM txn_gap WHERE missing_id = $1", stranded)
        return bool(state == "healed")

    await wait_until(healed, within=30, what=f"gap {stranded} healed")
    assert stranded not in homeserver.unsent_transactions()
    log = tail(bridge.log_path, 100_000, offset)
    assert "refusing transaction" in log and "resent" in log
    assert healed_in < HEAL_WITHIN + 60
    # The events around it arrived once each.
    counts = await inbox.fetch(
        "SELECT event_id, count(*) AS n FROM inbox WHERE event_id = ANY($1::text[]) "
        "GROUP BY event_id",
        [first, after_gap, trigger, stranded_event],
    )
    assert {r["event_id"]: r["n"] for r in counts} == dict.fromkeys(
        [first, after_gap, trigger, stranded_event], 1
    )
