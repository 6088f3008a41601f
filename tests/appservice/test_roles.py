"""Roles: an intake application and a worker application on one database, as two processes
would run them; the worker woken across "processes" by LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from bridge.app import WAKEUPS, init_app
from bridge.config import parse_config
from bridge.db.wakeups import INBOX_CHANNEL
from tests.appservice.test_api import AUTH, TXN, message
from tests.conftest import config_data


async def app_for(role: str, dsn: str, aiohttp_client: Any, **overrides: Any) -> TestClient:
    config = parse_config(config_data(appservice__role=role, **overrides))
    return await aiohttp_client(await init_app(config, dsn))


async def pending(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'"))


async def test_a_worker_serves_only_health(dsn: str, aiohttp_client: Any) -> None:
    worker = await app_for("worker", dsn, aiohttp_client)
    assert (await worker.get("/_matrix/mau/ready")).status == 200
    resp = await worker.put(f"{TXN}/1", json={"events": [message(1)]}, headers=AUTH)
    assert resp.status == 404
    assert (await worker.get("/messaging-api/v1/conversations")).status == 404


async def test_intake_stores_and_a_worker_elsewhere_is_woken_by_the_commit(
    dsn: str, aiohttp_client: Any, conn: asyncpg.Connection
) -> None:
    # Polling is an hour away: only a wake-up through the database can make the worker act.
    slow_poll = {"workers": 2, "poll_interval": 3600.0}
    worker = await app_for("worker", dsn, aiohttp_client, appservice__inbox=slow_poll)
    intake = await app_for("intake", dsn, aiohttp_client, appservice__inbox=slow_poll)
    assert WAKEUPS in worker.app and worker.app[WAKEUPS] is not None
    await asyncio.wait_for(worker.app[WAKEUPS].listening.wait(), 10)
    # Intake runs no workers: no wake-up reaches it (it may listen for renamed users).
    assert INBOX_CHANNEL in worker.app[WAKEUPS].channels
    assert INBOX_CHANNEL not in intake.app[WAKEUPS].channels
    resp = await intake.put(f"{TXN}/1", json={"events": [message(1), message(2)]}, headers=AUTH)
    assert resp.status == 200
    deadline = asyncio.get_running_loop().time() + 10
    while await pending(conn):
        assert asyncio.get_running_loop().time() < deadline, "not processed in time"
        await asyncio.sleep(0.02)
    states = await conn.fetch("SELECT state FROM inbox ORDER BY id")
    assert [r["state"] for r in states] == ["ignored", "ignored"]  # not a portal: kept, ignored
    assert worker.app[WAKEUPS].received >= 1
