"""The homeserver's ping reaches the bridge (`POST /_matrix/client/v1/appservice/{id}/ping`)."""

from __future__ import annotations

import secrets

import pytest
from mautrix.appservice import IntentAPI

from tests.e2e.bed import BridgeProcess, homeserver_ping, tail

pytestmark = pytest.mark.e2e


async def test_homeserver_ping_reaches_the_bridge(
    appservice: IntentAPI, bridge: BridgeProcess
) -> None:
    offset = bridge.log_offset()
    txn_id = f"e2e-ping-{secrets.token_hex(8)}"

    # mautrix raises unless Synapse answers 2xx, which it does only if the bridge answered its
    # POST /_matrix/app/v1/ping with 2xx (else 502 M_AS_PING_* or 504).
    resp = await homeserver_ping(appservice, txn_id)

    assert isinstance(resp.get("duration_ms"), int), resp
    assert resp["duration_ms"] >= 0
    # It was this bridge process that Synapse pinged, with the transaction id given.
    assert txn_id in tail(bridge.log_path, 10_000, offset)
