"""The application factory: builds the aiohttp app and wires every component (no globals)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from .api import mount_api
from .appservice.api import AppServiceAPI
from .appservice.directory import Directory
from .appservice.health import Health
from .appservice.middleware import matrix_errors
from .config import Config
from .db.database import Database
from .matrix.bridging.context import HandlerContext
from .matrix.bridging.from_matrix import register_handlers
from .matrix.bridging.homeserver_queries import BridgeDirectory
from .matrix.bridging.portal_store import PortalStore
from .matrix.bridging.to_matrix.network_changes import MatrixDelivery
from .matrix.bridging.to_matrix.request_answers import NetworkingMirror, OutboxResults
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
from .services import build_services

CONFIG = web.AppKey("config", Config)
DATABASE = web.AppKey("database", Database)
PROCESSOR = web.AppKey("processor", InboxProcessor)
SENDER = web.AppKey("sender", OutboxSender)
CONTEXT = web.AppKey("context", HandlerContext)
INTENTS = web.AppKey("intents", Intents)
OUTBOX = web.AppKey("outbox", OutboxQueue)


async def init_app(
    config: Config,
    dsn: str,
    *,
    dispatcher: Dispatcher | None = None,
    directory: Directory | None = None,
) -> web.Application:
    """Build the bridge's aiohttp application on the database at ``dsn`` (schema at head).

    ``dispatcher`` and ``directory`` replace the real event handlers and homeserver-query
    answers (tests of the mechanism use them).
    """
    app = web.Application(
        middlewares=[matrix_errors], client_max_size=config.appservice.max_body_size
    )
    db = Database(
        dsn,
        min_size=config.appservice.database_pool_min,
        max_size=config.appservice.database_pool_max,
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
    services = build_services(db)
    users, messaging = services.users, services.messaging
    networking, notifications = services.networking, services.notifications
    outbox_store = OutboxStore()
    outbox = OutboxQueue(outbox_store)
    ctx = HandlerContext(
        config=config,
        ids=MatrixIds(config),
        portals=PortalStore(),
        outbox=outbox,
        users=users,
        messaging=messaging,
        networking=networking,
        notifications=notifications,
    )
    networking.add_listener(NetworkingMirror(ctx))
    delivery = MatrixDelivery(ctx)
    messaging.add_listener(delivery)
    networking.add_listener(delivery)
    notifications.add_listener(delivery)
    sender = OutboxSender(
        db,
        outbox_store,
        intents,
        config.appservice.outbox,
        portals=ctx.portals,
        on_sent=OutboxResults(ctx).sent,
    )
    outbox.wake_with(sender.wake)
    db.after_commit(outbox.flush)  # REST changes, and anything else in db.transaction()
    if dispatcher is None:
        dispatcher = Dispatcher()
        register_handlers(dispatcher, ctx)
    inbox_store = InboxStore()
    inbox_config = config.appservice.inbox
    backlog = Backlog(inbox_config.max_backlog, inbox_config.max_hold)
    processor = InboxProcessor(
        db, inbox_store, dispatcher, inbox_config, after_commit=outbox.flush, backlog=backlog
    )
    intake = IntakeService(db, inbox_store, processor.wake, backlog)
    retention = Retention(db, inbox_store, outbox_store, inbox_config.keep_days)
    appservice = AppServiceAPI(config, intake, directory or BridgeDirectory(db, ctx, intents))
    app.add_routes(appservice.routes())
    app.add_routes(Health(db).routes())
    if config.api.enabled:
        mount_api(
            app,
            config,
            db,
            services,
        )

    app[CONFIG] = config
    app[DATABASE] = db
    app[PROCESSOR] = processor
    app[SENDER] = sender
    app[CONTEXT] = ctx
    app[INTENTS] = intents
    app[OUTBOX] = outbox

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
        yield
        await retention.stop()
        await processor.stop()
        await sender.stop()

    app.cleanup_ctx.extend([homeserver_session, database, workers])
    return app
