"""The application factory: builds the aiohttp app and wires every component (no globals)."""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from .api import mount_api
from .appservice.api import AppServiceAPI
from .appservice.directory import Directory
from .appservice.gap_store import GapStore
from .appservice.gaps import GapChecker, TxnGapWatch
from .appservice.health import Health
from .appservice.middleware import matrix_errors
from .config import Config
from .credentials.setup import build_credentials
from .db.database import Database
from .db.priority import SessionPriority
from .db.wakeups import INBOX_CHANNEL, OUTBOX_CHANNEL, WakeupListener
from .logs import transaction_log_context
from .matrix.bridging.context import BridgingContext
from .matrix.bridging.from_matrix import register_handlers
from .matrix.bridging.homeserver_queries import BridgeDirectory
from .matrix.bridging.portal_store import PortalStore
from .matrix.bridging.post_store import PostStore
from .matrix.bridging.to_matrix.network_changes import NetworkChangesToMatrix
from .matrix.bridging.to_matrix.network_posts import NetworkPostsToMatrix
from .matrix.bridging.to_matrix.request_answers import OutboxResults, RequestAnswersToMatrix
from .matrix.ids import MatrixIds
from .matrix.inbox.backlog import Backlog
from .matrix.inbox.dispatch import Dispatcher
from .matrix.inbox.intake import IntakeService
from .matrix.inbox.processor import InboxProcessor
from .matrix.inbox.store import InboxStore
from .matrix.outbox.intents import Intents
from .matrix.outbox.queue import OutboxQueue
from .matrix.outbox.sender import OutboxSender
from .matrix.outbox.store import OutboxStore
from .matrix.retention import Retention
from .metrics import Metrics
from .metrics.http import appservice_metrics_middleware, homeserver_trace, rest_metrics_middleware
from .metrics.scrape import StateCollector, metrics_app, serve_metrics
from .ops.admin import mount_admin
from .ops.status_store import StatusStore
from .services import build_services
from .users.cache import USER_CHANNEL

DATABASE = web.AppKey("database", Database)
CONTEXT = web.AppKey("context", BridgingContext)
INTENTS = web.AppKey("intents", Intents)
OUTBOX = web.AppKey("outbox", OutboxQueue)
METRICS = web.AppKey("metrics", Metrics)
METRICS_APP = web.AppKey("metrics_app", web.Application)
WAKEUPS = web.AppKey("wakeups", WakeupListener)


def _waker(processor: InboxProcessor, sender: OutboxSender) -> Callable[[], None]:
    def wake() -> None:
        processor.wake()
        sender.wake()

    return wake


def process_name(role: str) -> str:
    """This application as the database sees it (``application_name``, at most 63 bytes) and
    as the owner of the outbox lanes it leases: role, pid, a random tag (unique even for two
    applications in one process), host."""
    return f"bridge {role} {os.getpid()}.{secrets.token_hex(3)}@{socket.gethostname()}"[:63]


async def init_app(
    config: Config,
    dsn: str,
    *,
    dispatcher: Dispatcher | None = None,
    directory: Directory | None = None,
    background_workers: bool = True,
) -> web.Application:
    """Build the bridge's aiohttp application on the database at ``dsn`` (schema at head).

    ``appservice.role`` decides what runs: ``intake`` serves the homeserver, the REST API and
    health; ``worker`` runs the inbox and outbox workers and the periodic jobs and serves only
    health; ``all`` does both. ``dispatcher`` and ``directory`` replace the real event handlers
    and homeserver-query answers (tests of the mechanism use them). Without
    ``background_workers`` nothing runs the inbox workers, the outbox sender or retention,
    whatever the role: events are stored, never processed (for tools and tests that drive
    processing themselves, or measure intake alone).
    """
    metrics = Metrics()
    role = config.appservice.role
    app = web.Application(
        middlewares=[
            appservice_metrics_middleware(metrics),
            rest_metrics_middleware(metrics),
            transaction_log_context,
            matrix_errors,
        ],
        client_max_size=config.appservice.max_body_size,
    )
    name = process_name(role)
    db = Database(
        dsn,
        min_size=config.appservice.database_pool_min,
        max_size=config.appservice.database_pool_max,
        application_name=name,
        # A worker process's sessions yield the CPU to intake's (see db.priority).
        on_connect=SessionPriority(config.appservice.worker_nice)
        if role == "worker" and config.appservice.worker_nice
        else None,
    )
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=config.appservice.outbox.request_timeout),
        connector=aiohttp.TCPConnector(ssl=config.homeserver.verify_ssl),
        trace_configs=[homeserver_trace(metrics)],
    )
    intents = Intents(
        session,
        homeserver_url=config.homeserver.address,
        as_token=config.appservice.as_token,
        bot_mxid=config.bot_mxid,
    )
    services = build_services(db)
    users, messaging = services.users, services.messaging
    networking, notifications = services.networking, services.notifications
    outbox_store = OutboxStore()
    outbox = OutboxQueue(outbox_store)
    ctx = BridgingContext(
        config=config,
        ids=MatrixIds(config),
        portals=PortalStore(),
        outbox=outbox,
        users=users,
        messaging=messaging,
        networking=networking,
        notifications=notifications,
    )
    networking.add_listener(RequestAnswersToMatrix(ctx))
    to_matrix = NetworkChangesToMatrix(ctx)
    messaging.add_listener(to_matrix)
    networking.add_listener(to_matrix)
    notifications.add_listener(to_matrix)
    messaging.write_posts_with(NetworkPostsToMatrix(to_matrix, outbox, PostStore()))
    sender = OutboxSender(
        db,
        outbox_store,
        intents,
        config.appservice.outbox,
        portals=ctx.portals,
        on_sent=OutboxResults(ctx).sent,
        owner=name,
        metrics=metrics,
    )
    outbox.wake_with(sender.wake)
    db.after_commit(outbox.flush)  # REST changes, and anything else in db.transaction()
    if dispatcher is None:
        dispatcher = Dispatcher()
        register_handlers(dispatcher, ctx)
    inbox_store = InboxStore()
    inbox_config = config.appservice.inbox

    async def count_pending() -> int:
        async with db.acquire() as conn:
            return await inbox_store.count_pending(conn)

    backlog = Backlog(inbox_config.max_backlog, inbox_config.max_hold, recount=count_pending)
    processor = InboxProcessor(
        db,
        inbox_store,
        dispatcher,
        inbox_config,
        after_commit=outbox.flush,
        backlog=backlog if config.appservice.runs_intake else None,
        metrics=metrics,
    )
    intake = IntakeService(db, inbox_store, processor.wake, backlog, metrics=metrics)
    retention = Retention(db, inbox_store, outbox_store, inbox_config.keep_days)
    gap_store = GapStore()
    gaps_config = config.appservice.transaction_gaps
    gap_checker = GapChecker(db, gap_store, gaps_config, metrics)
    listens = config.appservice.listen_notify
    wakeups = WakeupListener(
        dsn,
        name,
        {INBOX_CHANNEL: processor.wake, OUTBOX_CHANNEL: sender.wake}
        if background_workers and config.appservice.runs_workers and listens
        else {},
        # The REST API's token users, cached while their changes are heard (users.cache).
        payload_handlers={USER_CHANNEL: users.cache.changed}
        if listens and config.api.enabled and config.appservice.runs_intake
        else {},
    )
    users.cache.follow(wakeups.listening.is_set)
    if config.appservice.runs_intake:
        appservice = AppServiceAPI(
            config,
            intake,
            directory or BridgeDirectory(db, ctx, intents),
            gaps=TxnGapWatch(db, gap_store, gaps_config, metrics),
        )
        app.add_routes(appservice.routes())
    app.add_routes(Health(db).routes())
    if config.api.enabled and config.appservice.runs_intake:
        credentials = build_credentials(config, db, users)
        mount_api(
            app,
            config,
            db,
            dataclasses.replace(
                services, credentials=credentials.service, credential_auth=credentials.auth
            ),
        )

    app[DATABASE] = db
    app[CONTEXT] = ctx
    app[INTENTS] = intents
    app[OUTBOX] = outbox
    app[METRICS] = metrics
    status_store = StatusStore()
    embedded = config.appservice.uses_embedded_database
    app[METRICS_APP] = metrics_app(metrics, StateCollector(db, status_store, embedded=embedded))
    if config.admin.enabled and config.appservice.runs_intake:
        wake = _waker(processor, sender)
        mount_admin(app, config, db, metrics, intents, status_store, gap_store, wake=wake)
    app[WAKEUPS] = wakeups

    async def database(_: web.Application) -> AsyncIterator[None]:
        await db.open()
        yield
        await db.close()

    async def homeserver_session(_: web.Application) -> AsyncIterator[None]:
        yield
        await session.close()

    async def workers(_: web.Application) -> AsyncIterator[None]:
        processor.start()
        sender.start()
        retention.start()
        gap_checker.start()
        yield
        await gap_checker.stop()
        await retention.stop()
        await processor.stop()
        await sender.stop()

    async def listener(_: web.Application) -> AsyncIterator[None]:
        wakeups.start()
        yield
        await wakeups.stop()

    async def metrics_listener(_: web.Application) -> AsyncIterator[None]:
        async with serve_metrics(app[METRICS_APP], config.metrics.host, config.metrics.port):
            yield

    app.cleanup_ctx.extend([homeserver_session, database])
    if background_workers and config.appservice.runs_workers:
        app.cleanup_ctx.append(workers)
    app.cleanup_ctx.append(listener)  # after the workers it wakes
    if config.metrics.enabled:
        app.cleanup_ctx.append(metrics_listener)
    return app
