"""Ephemeral events in a transaction whose id the homeserver reuses after a restart.

Synapse on SQLite starts its transaction ids over after a restart (see
test_homeserver_restart.py), so a new transaction can carry an id the bridge has seen, with a
different body. Its PDUs are kept (deduplicated by event id); its EDUs have no id, so the bridge
keys them by transaction id, body digest and content: an EDU identical to one of the earlier
transaction with that id (alice starts typing again, same presence as before) must be kept.

This drives the bridge's transaction endpoint directly, as the homeserver would, because the
homeserver's choice of ids and batching cannot be steered from a client.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import aiohttp
import pytest

from tests.e2e.bed import BridgeProcess, Inbox, wait_until

pytestmark = pytest.mark.e2e


async def put_transaction(bridge: BridgeProcess, txn_id: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        resp = await session.put(
            f"{bridge.url}/_matrix/app/v1/transactions/{txn_id}",
            json=body,
            headers={"Authorization": f"Bearer {bridge.hs_token}"},
        )
        assert resp.status == 200, await resp.text()


async def test_edu_repeated_under_a_reused_txn_id_is_kept(
    bridge: BridgeProcess, inbox: Inbox
) -> None:
    room = f"!reuse{secrets.token_hex(6)}:localhost"
    alice = "@alice:localhost"
    typing = {"type": "m.typing", "room_id": room, "content": {"user_ids": [alice]}}
    stopped = {"type": "m.typing", "room_id": room, "content": {"user_ids": []}}
    message = {
        "event_id": f"$reuse{secrets.token_hex(8)}",
        "type": "m.room.message",
        "room_id": room,
        "sender": alice,
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "back after the restart"},
    }
    txn = f"{secrets.randbelow(10**9)}"

    await put_transaction(bridge, txn, {"events": [], "ephemeral": [typing]})
    await put_transaction(bridge, f"{txn}1", {"events": [], "ephemeral": [stopped]})
    # The homeserver restarted: the same id again, another body, alice typing again.
    await put_transaction(bridge, txn, {"events": [message], "ephemeral": [typing]})

    async def typing_rows() -> list[Any] | None:
        rows = await inbox.fetch(
            "SELECT event FROM inbox WHERE lane = $1 AND event_type = 'm.typing' ORDER BY id",
            room,
        )
        message_in = await inbox.fetchval(
            "SELECT count(*) FROM inbox WHERE event_id = $1", message["event_id"]
        )
        return rows if message_in else None

    rows = await wait_until(typing_rows, within=10, what="the third transaction in the inbox")
    states = [
        (json.loads(r["event"]) if isinstance(r["event"], str) else r["event"])["content"]
        for r in rows
    ]
    # Alice started, stopped and started typing again: the last state the bridge has must be
    # "typing", as the homeserver said last.
    assert states == [{"user_ids": [alice]}, {"user_ids": []}, {"user_ids": [alice]}]
