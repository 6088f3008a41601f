"""The database for an operator's command, while the bridge may be running.

With the embedded PostgreSQL, a running bridge holds its data directory; a command then talks
to that bridge's server through its Unix socket instead of starting its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..config import Config
from ..db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from ..db.pg_host import read_pidfile


@dataclass(frozen=True, slots=True)
class OperatorDatabase:
    dsn: str
    #: 'external', 'embedded' (started for this command) or 'running bridge' (its server)
    how: str
    detail: str = ""


def running_embedded_dsn(data_dir: Path, database: str = "bridge") -> str | None:
    """The DSN of a live postmaster in ``data_dir`` (from its ``postmaster.pid``), if any."""
    pidfile = read_pidfile(data_dir / "postmaster.pid")
    if pidfile is None or pidfile.port is None or not pidfile.socket_dir:
        return None
    try:
        os.kill(pidfile.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, run by PostgreSQL's own user
    return (
        f"postgresql://postgres@/{quote(database, safe='')}"
        f"?host={quote(pidfile.socket_dir, safe='/')}&port={pidfile.port}"
    )


@contextlib.asynccontextmanager
async def operator_database(config: Config) -> AsyncIterator[OperatorDatabase]:
    if not config.appservice.uses_embedded_database:
        yield OperatorDatabase(config.appservice.database, "external")
        return
    data_dir = config.appservice.embedded_data_dir
    embedded = EmbeddedPostgres(data_dir)
    try:
        dsn = await asyncio.to_thread(embedded.start)
    except EmbeddedPostgresError as exc:
        running = running_embedded_dsn(data_dir) if "in use" in str(exc) else None
        if running is None:
            raise
        yield OperatorDatabase(running, "running bridge", str(exc))
        return
    try:
        yield OperatorDatabase(dsn, "embedded")
    finally:
        await asyncio.to_thread(embedded.stop)
