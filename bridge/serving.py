"""Serving the bridge: its database (embedded or by URL) and its HTTP listener, started and
stopped cleanly. ``bridge run`` and ``bridge demo`` both run the bridge through here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import __version__
from .api import RedactingAccessLogger
from .app import INTENTS, init_app
from .config import Config
from .db.embedded import EmbeddedPostgres
from .matrix.outbox.intents import Intents

log = logging.getLogger("bridge.cli")


@contextlib.asynccontextmanager
async def database_dsn(config: Config) -> AsyncIterator[str]:
    """The configured database's DSN; an embedded cluster is started and stopped around it."""
    if not config.appservice.uses_embedded_database:
        yield config.appservice.database
        return
    embedded = EmbeddedPostgres(config.appservice.embedded_data_dir)
    dsn = await asyncio.to_thread(embedded.start)
    try:
        yield dsn
    finally:
        await asyncio.to_thread(embedded.stop)


@contextlib.asynccontextmanager
async def running_bridge(config: Config, dsn: str) -> AsyncIterator[web.Application]:
    """The bridge listening on its port, on the database at ``dsn`` (schema at head), until the
    block ends; then its listener, workers and pool are shut down."""
    app = await init_app(config, dsn)
    runner = web.AppRunner(
        app, access_log=log.getChild("access"), access_log_class=RedactingAccessLogger
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.appservice.hostname, config.appservice.port)
        await site.start()
        log.info(
            "Bridge %s listening on %s:%d as %s",
            __version__,
            config.appservice.hostname,
            config.appservice.port,
            config.bot_mxid,
        )
        ping = asyncio.create_task(ping_homeserver(app[INTENTS], config.appservice.id))
        try:
            yield app
        finally:
            ping.cancel()
            log.info("Shutting down")
    finally:
        await runner.cleanup()


async def ping_homeserver(intents: Intents, appservice_id: str) -> None:
    """Tell the homeserver we are up, so it resends what it held back at once. Best effort."""
    try:
        async with asyncio.timeout(30):
            duration = await intents.ping_homeserver(appservice_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("Could not ping the homeserver (it will still reach us): %s", exc)
        return
    log.info("Homeserver ping round trip: %d ms", duration)
