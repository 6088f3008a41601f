"""The app factory's switch for tools and tests: the app without its background workers."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from bridge.app import init_app
from bridge.config import Config
from tests.conftest import HS_TOKEN


def worker_tasks() -> set[str]:
    names = {t.get_name() for t in asyncio.all_tasks()}
    return {n for n in names if n.startswith(("inbox-worker", "outbox-worker")) or n == "retention"}


@pytest.mark.parametrize("background_workers", [True, False])
async def test_background_workers_run_only_when_asked(
    background_workers: bool,
    config: Config,
    dsn: str,
    aiohttp_client: Any,
    conn: asyncpg.Connection,
) -> None:
    client = await aiohttp_client(
        await init_app(config, dsn, background_workers=background_workers)
    )
    event = {
        "event_id": "$one",
        "type": "m.room.message",
        "room_id": "!r:localhost",
        "sender": "@alice:localhost",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "hi"},
    }
    resp = await client.put(
        "/_matrix/app/v1/transactions/1",
        json={"events": [event]},
        headers={"Authorization": f"Bearer {HS_TOKEN}"},
    )
    assert resp.status == 200
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = '$one'") == 1
    if background_workers:
        assert {"inbox-worker-0", "outbox-worker-0", "retention"} <= worker_tasks()
    else:
        assert worker_tasks() == set()  # stored, and nothing will process it
        assert await conn.fetchval("SELECT state FROM inbox WHERE event_id = '$one'") == "pending"
