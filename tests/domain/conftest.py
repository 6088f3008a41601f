from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from bridge.api.context import ApiServices as Services
from bridge.db.database import Database, init_connection
from bridge.services import build_services

__all__ = ["Services"]


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn, min_size=1, max_size=3)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def services(db: Database) -> Services:
    """The services as the app builds them; their entry points use ``db``."""
    return build_services(db)


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection set up as the pool's are (JSON codecs), as services expect."""
    connection = await asyncpg.connect(dsn)
    await init_connection(connection)
    try:
        yield connection
    finally:
        await connection.close()
