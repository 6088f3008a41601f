"""A job run every so often in its own task (retention, the transaction-gap check, ...).

Each job is an object the application starts and stops, so it can run in whichever process
role takes it. A transient failure (the database away) is logged and tried again next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

#: Failures a periodic job survives (tried again at its next run).
TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PeriodicJob:
    def __init__(
        self,
        name: str,
        run_once: Callable[[], Awaitable[object]],
        interval: float,
        *,
        run_at_start: bool = True,
    ) -> None:
        self._name = name
        self._run_once = run_once
        self._interval = interval
        self._run_at_start = run_at_start
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if not self._run_at_start:
            await asyncio.sleep(self._interval)
        while True:
            try:
                await self._run_once()
            except TRANSIENT as exc:
                log.warning("%s failed (will try again): %s", self._name, exc)
            await asyncio.sleep(self._interval)
