"""A lower CPU priority for the worker role (``appservice.worker_nice``).

The homeserver waits for intake's answers; processing may lag as long as the backlog stays
bounded. Where intake and workers share a machine's cores, the worker process runs at a higher
nice value, and so do its database sessions when PostgreSQL runs on this machine (most of a
worker's CPU is spent in them): intake and its sessions then get a core first, and the workers
take what is left. A nice value is only ever raised (a lower priority), which needs no
privilege for one's own processes.

A session's backend is reniced only once it is certain to be the process serving this
connection: ``pg_backend_pid()`` names a process here called ``postgres`` that started when
the server says the session did (a server in another PID namespace or on another host is left
alone). Locks a low-priority session holds could delay intake; the workers hold the lane rows
intake writes to only for the last statements of a batch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_PROC = Path("/proc")
_START_TOLERANCE = 2.0  # seconds between the server's backend_start and the kernel's

_BACKEND = """
SELECT pid, extract(epoch FROM backend_start)::float8 AS started
FROM pg_stat_activity WHERE pid = pg_backend_pid()
"""


def lower_process_priority(nice: int, pid: int = 0) -> bool:
    """Raise the nice value of process ``pid`` (0: this one) to ``nice`` if it is lower;
    False when not permitted (or no such process)."""
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < nice:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:  # not ours (EPERM/EACCES), or gone
        return False
    return True


def _started_here(pid: int) -> float | None:
    """When local process ``pid`` started (Unix time), if it is a PostgreSQL process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in (_PROC / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    name, _, rest = stat.partition("(")[2].rpartition(")")
    if name != "postgres":
        return None
    fields = rest.split()
    try:  # field 22 of stat, the 20th after the name: start time in clock ticks since boot
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None


async def lower_session_priority(conn: asyncpg.Connection, nice: int) -> bool:
    """Renice the backend serving ``conn`` to ``nice`` if it runs on this machine and may be
    reniced; True if it was."""
    row = await conn.fetchrow(_BACKEND)
    if row is None or row["started"] is None:
        return False
    started = _started_here(row["pid"])
    if started is None or abs(started - row["started"]) > _START_TOLERANCE:
        return False
    return lower_process_priority(nice, row["pid"])


class SessionPriority:
    """A pool's connection hook: each new session's backend at ``nice`` (logged once when
    that is not possible)."""

    def __init__(self, nice: int) -> None:
        self.nice = nice
        self._told = False

    async def __call__(self, conn: asyncpg.Connection) -> None:
        if await lower_session_priority(conn, self.nice) or self._told:
            return
        self._told = True
        log.info(
            "Database sessions keep their CPU priority (the server is not on this machine, "
            "or its processes are not this user's to renice)"
        )
