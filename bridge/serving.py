"""Serving the bridge: its database (embedded or by URL) and its HTTP listener, started and
stopped cleanly. ``bridge run`` and ``bridge demo`` both run the bridge through here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from . import __version__
from .api import RedactingAccessLogger
from .api.app import CLIENT_TLS
from .api.signing_keys import ensure_signing_key
from .app import INTENTS, METRICS, init_app
from .config import Config
from .db.embedded import EmbeddedPostgres
from .db.priority import lower_process_priority
from .listening import start_site
from .matrix.bot_profile import keep_applying_bot_profile
from .matrix.outbox.intents import Intents
from .metrics import Metrics

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
    worker_priority(config)
    jwt = config.api.jwt
    if jwt.private_key_file is None and jwt.key_dir is not None:
        ensure_signing_key(jwt.key_dir)  # first start: the bridge signs its own tokens
    app = await init_app(config, dsn)
    runner = web.AppRunner(
        app, access_log=log.getChild("access"), access_log_class=RedactingAccessLogger
    )
    try:
        await runner.setup()  # a listener of the app (metrics) that fails stops it here
        hostname, port = config.appservice.hostname, config.appservice.port
        await start_site(
            web.TCPSite(runner, hostname, port, reuse_port=config.appservice.reuse_port or None),
            "appservice.port",
            hostname,
            port,
            "to run several bridge processes on it, set appservice.reuse_port: true in each "
            "(or give each its own port)",
        )
        log.info(
            "Bridge %s (%s) listening on %s:%d as %s",
            __version__,
            config.appservice.role,
            config.appservice.hostname,
            config.appservice.port,
            config.bot_mxid,
        )
        # The ping makes the homeserver resend what it held back, and the bot's profile is set
        # once: intake's business (workers start and stop in numbers).
        started = (
            [
                asyncio.create_task(
                    ping_homeserver(app[INTENTS], config.appservice.id, app[METRICS])
                ),
                asyncio.create_task(keep_applying_bot_profile(app[INTENTS], config.appservice)),
            ]
            if config.appservice.runs_intake
            else []
        )
        tls_refresh = await start_tls_listener(runner, app, config)
        if tls_refresh is not None:
            started.append(tls_refresh)
        try:
            yield app
        finally:
            for task in started:
                task.cancel()
            log.info("Shutting down")
    finally:
        await runner.cleanup()


def worker_priority(config: Config) -> None:
    """A ``worker`` process runs at ``appservice.worker_nice``: intake, answering the
    homeserver, gets the CPU first where both share a machine."""
    nice = config.appservice.worker_nice
    if config.appservice.role == "worker" and nice:
        if lower_process_priority(nice):
            log.info("Worker process at nice %d", os.getpriority(os.PRIO_PROCESS, 0))
        else:
            log.warning("Could not lower this worker's CPU priority to nice %d", nice)


async def start_tls_listener(
    runner: web.AppRunner, app: web.Application, config: Config
) -> asyncio.Task[None] | None:
    """With ``api.tls``: the bridge also on its TLS port, requesting client certificates (the
    task keeping its trust store in step with the company certificates is returned)."""
    tls = config.api.tls
    listener = app.get(CLIENT_TLS)
    if tls is None or listener is None:
        return None
    await listener.refresh()
    host = tls.host or config.appservice.hostname
    site = web.TCPSite(runner, host, tls.port, ssl_context=listener.tls.context)
    await site.start()
    log.info("TLS listener (client certificates) on %s:%d", host, tls.port)
    return asyncio.create_task(listener.keep_refreshed())


async def ping_homeserver(
    intents: Intents, appservice_id: str, metrics: Metrics | None = None
) -> None:
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
    if metrics is not None:
        metrics.ping_succeeded(duration)
