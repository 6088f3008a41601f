"""Schema revisions: Alembic at head, checked on start and brought there by `bridge migrate`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class SchemaError(RuntimeError):
    """The database schema is not one this version of the bridge can run on."""


def alembic_config(dsn: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["dsn"] = dsn
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"migrations must have exactly one head, found {heads}")
    return heads[0]


def known_revisions() -> set[str]:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


async def current_revision(conn: asyncpg.Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists:
        return None
    value = await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
    return None if value is None else str(value)


async def upgrade(dsn: str) -> None:
    """Bring the schema to head. Safe to run from several processes at once (advisory lock)."""
    cfg = alembic_config(dsn)
    # env.py runs its own event loop, so Alembic gets a thread of its own.
    await asyncio.to_thread(command.upgrade, cfg, "head")


async def check_schema(conn: asyncpg.Connection) -> str:
    """Raise :class:`SchemaError` unless the schema is exactly at head; return the revision."""
    current = await current_revision(conn)
    head = head_revision()
    if current == head:
        return current
    if current is None:
        raise SchemaError("the database has no schema yet; run `bridge migrate`")
    if current not in known_revisions():
        raise SchemaError(
            f"the database is at revision {current}, unknown to this version of the bridge "
            "(written by a newer version?); refusing to run"
        )
    raise SchemaError(
        f"the database is at revision {current}, head is {head}; run `bridge migrate`"
    )


async def ensure_schema(dsn: str, *, migrate: bool) -> str:
    """Check the schema, migrating first when ``migrate`` is set and the database is behind."""
    conn = await asyncpg.connect(dsn)
    try:
        current = await current_revision(conn)
    finally:
        await conn.close()
    if migrate and current != head_revision():
        if current is not None and current not in known_revisions():
            raise SchemaError(
                f"the database is at revision {current}, unknown to this version of the bridge"
            )
        log.info("Migrating the database schema from %s to %s", current, head_revision())
        await upgrade(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        return await check_schema(conn)
    finally:
        await conn.close()
