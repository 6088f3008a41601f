"""Alembic environment: raw-SQL revisions run over asyncpg, serialised by an advisory lock.

The DSN comes from the programmatic config (``attributes["dsn"]``), from ``-x dsn=...`` on the
alembic command line, or from ``BRIDGE_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg
from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Any constant works; it only has to be the same for every bridge process.
MIGRATION_LOCK_ID = 0x62726964676500  # "bridge"


def _dsn() -> str:
    config = context.config
    dsn = config.attributes.get("dsn") or context.get_x_argument(as_dictionary=True).get("dsn")
    dsn = dsn or os.environ.get("BRIDGE_DATABASE_URL")
    if not dsn:
        raise RuntimeError("no database: pass -x dsn=postgres://... or set BRIDGE_DATABASE_URL")
    return str(dsn)


def _run(connection: Connection) -> None:
    connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
    connection.commit()
    try:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        # A failed revision leaves the transaction aborted; the session lock outlives it.
        connection.rollback()
        connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
        connection.commit()


async def _run_online() -> None:
    dsn = _dsn()
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(dsn)
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url="postgresql://", literal_binds=True, dialect_name="postgresql")
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
