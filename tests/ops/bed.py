"""The operator test bed: the whole bridge app on a real Postgres, a fake homeserver, and an
event handler that fails on demand (to make dead letters)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import METRICS_APP, init_app
from bridge.config import parse_config
from bridge.matrix.inbox.dispatch import Dispatcher
from bridge.matrix.inbox.events import InboxEvent, Outcome
from tests.conftest import AS_TOKEN, HS_TOKEN, config_data
from tests.fake_homeserver import FakeHomeserver, serve_fake_homeserver

AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}
JWT_SECRET = "an-operator-test-secret-of-32-bytes-at-least"
ROOM = "!ops:localhost"


def message(n: int, room: str = ROOM, body: str | None = None) -> dict[str, Any]:
    return {
        "event_id": f"$ops{n}",
        "type": "m.room.message",
        "room_id": room,
        "sender": "@alice:localhost",
        "origin_server_ts": 1700000000000 + n,
        "content": {"msgtype": "m.text", "body": body or f"hello {n}"},
    }


@dataclass
class Flaky:
    """Handles m.room.message; fails for event ids in ``broken``."""

    broken: set[str] = field(default_factory=set)
    processed: list[str] = field(default_factory=list)

    async def __call__(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        if event.event_id in self.broken:
            raise RuntimeError(f"handler broken for {event.event_id}")
        self.processed.append(event.event_id)
        return Outcome.PROCESSED


@dataclass
class Bed:
    client: TestClient
    app: web.Application
    hs: FakeHomeserver
    flaky: Flaky
    metrics: TestClient

    async def put_txn(self, txn_id: str, events: list[Any]) -> int:
        resp = await self.client.put(
            f"/_matrix/app/v1/transactions/{txn_id}", json={"events": events}, headers=AUTH
        )
        await resp.read()
        return resp.status

    async def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """``GET /metrics``, parsed by prometheus_client's own parser."""
        resp = await self.metrics.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(await resp.text()):
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return samples


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def hs(aiohttp_server: Any) -> AsyncIterator[FakeHomeserver]:
    fake = await serve_fake_homeserver(aiohttp_server, AS_TOKEN)
    yield fake


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Config overrides of a test module (``section__key`` names)."""
    return {}


@pytest.fixture
async def bed(dsn: str, hs: FakeHomeserver, aiohttp_client: Any, overrides: dict[str, Any]) -> Bed:
    config = parse_config(
        config_data(
            homeserver__address=hs.url,
            api__jwt={"algorithm": "HS256", "secret": JWT_SECRET},
            appservice__outbox={"retry_delay": 0.05, "poll_interval": 0.2},
            **overrides,
        )
    )
    flaky = Flaky()
    dispatcher = Dispatcher()
    dispatcher.register("m.room.message", flaky)
    app = await init_app(config, dsn, dispatcher=dispatcher)
    client = await aiohttp_client(app)
    metrics = await aiohttp_client(app[METRICS_APP])
    return Bed(client, app, hs, flaky, metrics)


async def poll(condition: Callable[[], Awaitable[object]], within: float = 15.0) -> None:
    """Poll ``condition`` until it is truthy; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)


def gap_state(
    conn: asyncpg.Connection, missing_id: int, state: str
) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        value = await conn.fetchval(
            "SELECT state FROM txn_gap WHERE missing_id = $1 ORDER BY id DESC LIMIT 1", missing_id
        )
        return bool(value == state)

    return reached
