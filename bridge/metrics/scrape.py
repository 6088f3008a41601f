"""Gauges read from the database when Prometheus scrapes, and the ``/metrics`` listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..db.database import Database
from ..listening import start_site
from ..ops.status_store import BridgeState, StatusStore
from . import Metrics

log = logging.getLogger(__name__)

#: The database gets this long per scrape; past it the state gauges are left out.
SCRAPE_TIMEOUT = 2.0
_DEAD_LETTER_SOURCES = ("intake", "inbox", "outbox")


class StateCollector(Collector):
    """Queue depths, ages, dead letters and pool use, refreshed before each scrape."""

    def __init__(self, db: Database, store: StatusStore, *, embedded: bool) -> None:
        self._db = db
        self._store = store
        self._embedded = embedded
        self._state: BridgeState | None = None

    async def refresh(self) -> BridgeState | None:
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT), self._db.acquire() as conn:
                self._state = await self._store.get_state(conn)
        except (
            TimeoutError,
            OSError,
            RuntimeError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            log.warning("Metrics: could not read the bridge's state: %s", exc)
            self._state = None
        return self._state

    def collect(self) -> Iterable[Metric]:
        state = self._state
        up = GaugeMetricFamily(
            "bridge_database_up", "1 when the database answered the last scrape's queries"
        )
        up.add_metric([], 1.0 if state is not None else 0.0)
        yield up
        if self._embedded:
            embedded = GaugeMetricFamily(
                "bridge_embedded_postgres_up", "1 when the embedded PostgreSQL answers"
            )
            embedded.add_metric([], 1.0 if state is not None else 0.0)
            yield embedded
        try:
            pool: asyncpg.Pool | None = self._db.pool
        except RuntimeError:  # not open (yet, or any more)
            pool = None
        if pool is not None:
            in_use = GaugeMetricFamily(
                "bridge_db_pool_connections", "Database pool connections by state", labels=["state"]
            )
            size, idle = pool.get_size(), pool.get_idle_size()
            in_use.add_metric(["in_use"], float(size - idle))
            in_use.add_metric(["idle"], float(idle))
            yield in_use
            limit = GaugeMetricFamily("bridge_db_pool_max", "Database pool size limit")
            limit.add_metric([], float(pool.get_max_size()))
            yield limit
        if state is None:
            return
        pending = GaugeMetricFamily(
            "bridge_inbox_pending",
            "Inbox events waiting: pending (never tried) or retrying (failed before)",
            labels=["state"],
        )
        oldest = GaugeMetricFamily(
            "bridge_inbox_oldest_pending_seconds",
            "Age of the oldest waiting inbox event, by state",
            labels=["state"],
        )
        for name, depth in sorted(state.inbox.items()):
            pending.add_metric([name], float(depth.count))
            oldest.add_metric([name], depth.oldest_seconds)
        yield pending
        yield oldest
        outbox = GaugeMetricFamily("bridge_outbox_pending", "Outbox actions waiting to be sent")
        outbox.add_metric([], float(state.outbox.count))
        yield outbox
        outbox_age = GaugeMetricFamily(
            "bridge_outbox_oldest_pending_seconds", "Age of the oldest waiting outbox action"
        )
        outbox_age.add_metric([], state.outbox.oldest_seconds)
        yield outbox_age
        dead = GaugeMetricFamily(
            "bridge_dead_letters_waiting",
            "Dead letters not replayed, by source",
            labels=["source"],
        )
        for source in _DEAD_LETTER_SOURCES:
            dead.add_metric([source], float(state.dead_letters.get(source, 0)))
        yield dead
        gaps = GaugeMetricFamily(
            "bridge_appservice_transaction_gaps_open",
            "Skipped transaction ids not yet resent or given up on",
        )
        gaps.add_metric([], float(state.open_gaps))
        yield gaps
        if state.last_transaction is not None:
            last = GaugeMetricFamily(
                "bridge_appservice_last_transaction_timestamp_seconds",
                "When the last transaction from the homeserver arrived (Unix time)",
            )
            last.add_metric([], state.last_transaction.received_at.timestamp())
            yield last


def metrics_app(metrics: Metrics, collector: StateCollector) -> web.Application:
    """The listener's application: ``GET /metrics`` in the Prometheus text format, with the
    state ``collector`` registered on the metrics' registry."""
    metrics.registry.register(collector)

    async def scrape(_: web.Request) -> web.Response:
        await collector.refresh()
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


@contextlib.asynccontextmanager
async def serve_metrics(app: web.Application, host: str, port: int) -> AsyncIterator[None]:
    """Run the metrics application on its own listener for the duration of the context."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await start_site(
            web.TCPSite(runner, host, port),
            "metrics.listen",
            host,
            port,
            "give each bridge process its own metrics port (bridge run --metrics-listen "
            "HOST:PORT; --processes N numbers its processes' ports from metrics.listen)",
        )
        log.info("Metrics on http://%s:%d/metrics", host, port)
        yield
    finally:
        await runner.cleanup()
