"""Metrics change as they should: scraped over HTTP and parsed as Prometheus text."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest

from bridge.app import DATABASE, OUTBOX, init_app
from bridge.config import parse_config
from bridge.matrix.outbox.actions import Send
from tests.conftest import config_data
from tests.ops.bed import Bed, message, poll, sample

BOT = "@_pn_bot:localhost"


async def test_a_transaction_counts_its_events_and_its_latency(bed: Bed) -> None:
    before = await bed.scrape()
    assert sample(before, "bridge_appservice_transactions_total", result="ok") == 0
    status = await bed.put_txn("1", [message(1), message(2), {"type": "broken"}])
    assert status == 200
    assert await bed.put_txn("2", [message(2)]) == 200  # a resend of an event: a duplicate

    after = await bed.scrape()
    assert sample(after, "bridge_appservice_transactions_total", result="ok") == 2
    assert sample(after, "bridge_appservice_events_total", result="stored") == 2
    assert sample(after, "bridge_appservice_events_total", result="duplicate") == 1
    assert sample(after, "bridge_appservice_events_total", result="rejected") == 1
    assert sample(after, "bridge_dead_letters_total", source="intake", reason="malformed") == 1
    assert sample(after, "bridge_dead_letters_waiting", source="intake") == 1
    assert sample(after, "bridge_appservice_transaction_duration_seconds_count") == 2
    assert sample(after, "bridge_appservice_last_transaction_timestamp_seconds") > 0
    assert sample(after, "bridge_database_up") == 1
    assert sample(after, "bridge_db_pool_connections", state="in_use") >= 0
    assert sample(after, "bridge_db_pool_max") == 20

    # A refused token is counted too, under its own result.
    resp = await bed.client.put("/_matrix/app/v1/transactions/3", json={"events": []})
    assert resp.status == 401
    assert (
        sample(await bed.scrape(), "bridge_appservice_transactions_total", result="unauthorized")
        == 1
    )


async def test_processing_and_a_failure_show_in_the_counters(bed: Bed) -> None:
    bed.flaky.broken.add("$ops2")
    assert await bed.put_txn("1", [message(1), message(2)]) == 200

    async def settled() -> bool:
        s = await bed.scrape()
        return sample(s, "bridge_dead_letters_total", source="inbox", reason="failed") == 1 and (
            sample(s, "bridge_inbox_pending", state="pending")
            + sample(s, "bridge_inbox_pending", state="retrying")
            == 0
        )

    await poll(settled)
    s = await bed.scrape()
    assert set(bed.flaky.processed) == {"$ops1"}  # (a batch that failed is redone)
    assert sample(s, "bridge_dead_letters_waiting", source="inbox") == 1
    assert sample(s, "bridge_inbox_event_lag_seconds_count") >= 1
    assert sample(s, "bridge_inbox_batch_duration_seconds_count") >= 1


async def test_pending_depth_and_age_are_read_at_scrape_time(bed: Bed) -> None:
    bed.flaky.broken.add("$ops1")  # retried with back-off: stays pending a while
    async with bed.app[DATABASE].acquire() as conn:
        await conn.execute("UPDATE inbox_lane SET not_before = now() + interval '1 hour'")
    await bed.put_txn("1", [message(1)])

    async def retrying() -> bool:
        s = await bed.scrape()
        return sample(s, "bridge_inbox_pending", state="retrying") == 1

    await poll(retrying)
    async with bed.app[DATABASE].acquire() as conn:
        await conn.execute("UPDATE inbox SET received_at = now() - interval '90 seconds'")
    s = await bed.scrape()
    assert 90 <= sample(s, "bridge_inbox_oldest_pending_seconds", state="retrying") < 120


async def test_a_429_is_counted_with_its_wait_and_errcode(bed: Bed) -> None:
    room = bed.hs.add_room([BOT])
    bed.hs.fail("/send/", status=429, errcode="M_LIMIT_EXCEEDED", retry_after_ms=300)
    async with bed.app[DATABASE].transaction() as conn:
        await bed.app[OUTBOX].enqueue(
            conn,
            room,
            BOT,
            Send(
                room_id=room,
                event_type="m.room.message",
                content={"msgtype": "m.notice", "body": "hi"},
            ),
        )

    async def sent() -> bool:
        s = await bed.scrape()
        return sample(s, "bridge_outbox_sends_total", result="sent", errcode="") == 1

    await poll(sent)
    s = await bed.scrape()
    assert (
        sample(s, "bridge_outbox_sends_total", result="rate_limited", errcode="M_LIMIT_EXCEEDED")
        == 1
    )
    assert sample(s, "bridge_outbox_rate_limited_seconds_total") == pytest.approx(0.3)
    assert (
        sample(s, "bridge_homeserver_request_duration_seconds_count", method="PUT", outcome="4xx")
        == 1
    )
    assert (
        sample(s, "bridge_homeserver_request_duration_seconds_count", method="PUT", outcome="2xx")
        == 1
    )
    assert sample(s, "bridge_outbox_pending") == 0


async def test_rest_requests_are_counted_by_route_template_not_path(bed: Bed) -> None:
    for _ in range(2):
        resp = await bed.client.get(
            "/messaging-api/v1/conversations/0f0f0f0f-0000-4000-8000-000000000001"
        )
        assert resp.status == 401
    s = await bed.scrape()
    labels = [dict(k[1]) for k in s if k[0] == "bridge_rest_requests_total"]
    assert labels == [
        {
            "route": "/messaging-api/v1/conversations/{conversationId}",
            "method": "GET",
            "status": "401",
        }
    ]
    assert sum(v for k, v in s.items() if k[0] == "bridge_rest_requests_total") == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_metrics_listen_on_their_own_port(dsn: str, aiohttp_client: Any) -> None:
    port = free_port()
    config = parse_config(config_data(metrics={"enabled": True, "listen": f"127.0.0.1:{port}"}))
    client = await aiohttp_client(await init_app(config, dsn))
    async with aiohttp.ClientSession(trust_env=False) as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    assert "# TYPE bridge_appservice_transactions_total counter" in text
    assert "bridge_embedded_postgres_up 1.0" in text
    # Not on the bridge's own port.
    assert (await client.get("/metrics")).status == 404
