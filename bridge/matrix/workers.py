"""A pool of worker tasks that run a unit of work while there is some, and sleep otherwise.

Shared by the inbox processor and the outbox sender. A wake-up rouses one idle worker (not all
of them: an idle pool woken for every committed transaction costs a database round trip per
worker); a worker that found work rouses one more, so the pool ramps up under a backlog. A
wake-up that finds no idle worker is kept for the next worker about to sleep, so none is lost.
Idle workers also wake for the next scheduled retry (or an outbox lease running out) and every
``poll_interval``: work committed by other bridge processes wakes them at once through
:mod:`bridge.db.wakeups`, and polling finds it when that cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class WorkerPool:
    def __init__(
        self,
        name: str,
        count: int,
        run_once: Callable[[], Awaitable[bool]],
        *,
        poll_interval: float,
        seconds_until_due: Callable[[], Awaitable[float | None]],
        transient: tuple[type[BaseException], ...],
    ) -> None:
        self._name = name
        self._count = count
        self._run_once = run_once
        self._poll_interval = poll_interval
        self._seconds_until_due = seconds_until_due
        self._transient = transient
        self._idle: list[asyncio.Event] = []
        self._pending_wake = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wake(self) -> None:
        """Work was committed: rouse one idle worker (or the next one about to sleep)."""
        if self._idle:
            self._idle.pop().set()
        else:
            self._pending_wake = True

    def start(self) -> None:
        self._stopping = False
        self._pending_wake = True
        for n in range(self._count):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"{self._name}-{n}"))

    async def stop(self, grace: float = 0.0) -> None:
        """Stop; work in flight may finish for ``grace`` seconds, then it is cancelled."""
        self._stopping = True
        for event in self._idle:
            event.set()
        if self._tasks and grace > 0:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._idle.clear()

    async def _worker(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                worked = await self._run_once()
                failures = 0
            except self._transient as exc:
                failures += 1
                log.warning("%s: %s; retrying (failure %d)", self._name, exc, failures)
                worked = False
            except Exception:
                failures += 1
                log.exception("%s: unexpected error (failure %d)", self._name, failures)
                worked = False
            if worked:
                self.wake()  # there may be more: let a peer look too
                continue
            await self._sleep(failures)

    async def _sleep(self, failures: int) -> None:
        timeout = self._poll_interval * min(2**failures, 16)
        if not failures:
            with contextlib.suppress(*self._transient):
                due = await self._seconds_until_due()
                if due is not None:
                    timeout = min(timeout, max(due, 0.01))
        if self._pending_wake:
            self._pending_wake = False
            return
        event = asyncio.Event()
        self._idle.append(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(event)
