"""The application factory: builds the aiohttp app and wires every component (no globals)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from .api import ApiServices, mount_api
from .appservice.api import AppServiceAPI
from .appservice.directory import Directory
from .appservice.health import Health
from .appservice.middleware import matrix_errors
from .config import Config
from .db.database import Database
from .db.wakeups import INBOX_CHANNEL, OUTBOX_CHANNEL, WakeupListener
from .matrix.bridging.context import BridgingContext
from .matrix.bridging.from_matrix import register_handlers
from .matrix.bridging.homeserver_queries import BridgeDirectory
from .matrix.bridging.portal_store import PortalStore
from .matrix.bridging.to_matrix.network_changes import NetworkChangesToMatrix
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
from .messaging.service import MessagingService
from .messaging.store import MessagingStore
from .networking.service import NetworkingService
from .networking.store import NetworkingStore
from .notifications.service import NotificationService
from .notifications.store import NotificationStore
from .users.service import UserService
from .users.store import UserStore

DATABASE = web.AppKey("database", Database)
CONTEXT = web.AppKey("context", BridgingContext)
INTENTS = web.AppKey("intents", Intents)
WAKEUPS = web.AppKey("wakeups", WakeupListener)


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
    role = config.appservice.role
    app = web.Application(
        middlewares=[matrix_errors], client_max_size=config.appservice.max_body_size
    )
    name = process_name(role)
    db = Database(
        dsn,
        min_size=config.appservice.database_pool_min,
        max_size=config.appservice.database_pool_max,
        application_name=name,
    )
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=config.appservice.outbox.request_timeout),
        connector=aiohttp.TCPConnector(ssl=config.homeserver.verify_ssl),
    )
    intents = Intents(
        session,
        homeserver_url=config.homeserver.address,
        as_token=config.appservice.as_token,
        bot_mxid=config.bot_mxid,
    )
    notifications = NotificationService(NotificationStore())
    users = UserService(UserStore())
    messaging = MessagingService(MessagingStore(), notifications)
    networking = NetworkingService(NetworkingStore(), notifications)
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
    sender = OutboxSender(
        db,
        outbox_store,
        intents,
        config.appservice.outbox,
        portals=ctx.portals,
        on_sent=OutboxResults(ctx).sent,
        owner=name,
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
    )
    intake = IntakeService(db, inbox_store, processor.wake, backlog)
    retention = Retention(db, inbox_store, outbox_store, inbox_config.keep_days)
    wakeups = WakeupListener(
        dsn,
        name,
        {INBOX_CHANNEL: processor.wake, OUTBOX_CHANNEL: sender.wake}
        if config.appservice.runs_workers and config.appservice.listen_notify
        else {},
    )
    if config.appservice.runs_intake:
        appservice = AppServiceAPI(config, intake, directory or BridgeDirectory(db, ctx, intents))
        app.add_routes(appservice.routes())
    app.add_routes(Health(db).routes())
    if config.api.enabled and config.appservice.runs_intake:
        mount_api(
            app,
            config,
            db,
            ApiServices(
                users=users, messaging=messaging, networking=networking, notifications=notifications
            ),
        )

    app[DATABASE] = db
    app[CONTEXT] = ctx
    app[INTENTS] = intents
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
        wakeups.start()
        yield
        await wakeups.stop()
        await retention.stop()
        await processor.stop()
        await sender.stop()

    app.cleanup_ctx.extend([homeserver_session, database])
    if background_workers and config.appservice.runs_workers:
        app.cleanup_ctx.append(workers)
    return app
