"""Messages of a Matrix user reach the bridge's durable inbox and are processed."""

from __future__ import annotations

import json

import pytest
from mautrix.appservice import IntentAPI
from mautrix.client import ClientAPI
from mautrix.types import EventType, MessageType, TextMessageEventContent

from tests.e2e.bed import MESSAGE_DONE_STATE, Inbox, portal_room

pytestmark = pytest.mark.e2e

MESSAGES = 20


async def test_messages_reach_the_inbox_in_order_and_are_processed(
    alice: ClientAPI, appservice: IntentAPI, inbox: Inbox
) -> None:
    room_id = await portal_room(alice, appservice, "messages")
    sent: list[str] = []
    for n in range(MESSAGES):
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=f"message {n}")
        sent.append(str(await alice.send_message_event(room_id, EventType.ROOM_MESSAGE, content)))

    rows = await inbox.wait_processed(sent, within=60)

    assert len(rows) == MESSAGES
    # Arrival order (the bigserial id) is the order alice sent them in.
    assert [r["event_id"] for r in rows] == sent
    for n, row in enumerate(rows):
        event = json.loads(row["event"]) if isinstance(row["event"], str) else row["event"]
        assert row["kind"] == "pdu"
        assert row["lane"] == room_id
        assert row["event_type"] == "m.room.message"
        assert row["sender"] == alice.mxid
        assert event["event_id"] == row["event_id"]
        assert event["content"]["body"] == f"message {n}"
        assert row["state"] == MESSAGE_DONE_STATE
        assert row["processed_at"] is not None
        assert row["attempts"] == 0
    # Each row names the transaction it came in, and that transaction was recorded.
    txn_ids = sorted({r["txn_id"] for r in rows})
    recorded = await inbox.fetch(
        "SELECT DISTINCT txn_id FROM appservice_txn WHERE txn_id = ANY($1::text[])", txn_ids
    )
    assert sorted(r["txn_id"] for r in recorded) == txn_ids
    assert not await inbox.fetch("SELECT 1 FROM dead_letter WHERE event_id = ANY($1::text[])", sent)
