"""The application factory: builds the aiohttp app and wires every component (no globals)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .appservice.api import AppServiceAPI
from .appservice.directory import Directory, EmptyDirectory
from .appservice.health import Health
from .appservice.middleware import matrix_errors
from .config import Config
from .db.database import Database
from .matrix.dispatch import Dispatcher
from .matrix.inbox import InboxProcessor
from .matrix.inbox_store import InboxStore
from .matrix.intake import IntakeService

CONFIG = web.AppKey("config", Config)
DATABASE = web.AppKey("database", Database)
PROCESSOR = web.AppKey("processor", InboxProcessor)


def init_app(
    config: Config,
    dsn: str,
    *,
    dispatcher: Dispatcher | None = None,
    directory: Directory | None = None,
) -> web.Application:
    """Build the bridge's aiohttp application on the database at ``dsn`` (schema at head)."""
    app = web.Application(
        middlewares=[matrix_errors], client_max_size=config.appservice.max_body_size
    )
    db = Database(
        dsn,
        min_size=config.appservice.database_pool_min,
        max_size=config.appservice.database_pool_max,
    )
    inbox_store = InboxStore()
    processor = InboxProcessor(
        db, inbox_store, dispatcher or Dispatcher(), config.appservice.inbox
    )
    intake = IntakeService(db, inbox_store, processor.wake)
    appservice = AppServiceAPI(config, intake, directory or EmptyDirectory())
    app.add_routes(appservice.routes())
    app.add_routes(Health(db).routes())

    app[CONFIG] = config
    app[DATABASE] = db
    app[PROCESSOR] = processor

    async def database(_: web.Application) -> AsyncIterator[None]:
        await db.open()
        yield
        await db.close()

    async def workers(_: web.Application) -> AsyncIterator[None]:
        processor.start()
        yield
        await processor.stop()

    app.cleanup_ctx.extend([database, workers])
    return app
