"""Back-pressure: intake holds its answer while the inbox holds more than processing can take.

Synapse keeps one transaction in flight and sends the next when the last is answered, so an
answer held back slows the homeserver down to the bridge's processing rate, while every event
received is already committed (nothing is lost or refused). The hold is bounded well under the
homeserver's 60 s request timeout: past it, intake answers anyway and the backlog grows.

The count of pending events is kept in the process: intake adds what it stored, the workers
subtract what they finished; when the workers find nothing to claim while the count says there
is work, they set it from the database (retries waiting for their time, events another bridge
process took, a batch that rolled back after it was counted). An intake process without workers
of its own (``role: intake``) is told of no finished events, so while it holds an answer it
re-reads the count from the database every ``recount_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Backlog:
    def __init__(
        self,
        limit: int,
        max_hold: float,
        *,
        recount: Callable[[], Awaitable[int]] | None = None,
        recount_interval: float = 0.25,
    ) -> None:
        """``limit`` pending events before intake holds (0: never); ``max_hold`` seconds;
        ``recount`` reads the pending count from the database while an answer is held."""
        self.limit = limit
        self.max_hold = max_hold
        self._recount = recount
        self._recount_interval = recount_interval
        self._recounting: asyncio.Lock | None = None
        self._pending = 0
        self._room = asyncio.Event()
        self._room.set()
        self.holds = 0  # transactions held back, in all

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def over_limit(self) -> bool:
        return self.limit > 0 and self._pending > self.limit

    def added(self, count: int) -> None:
        self._set(self._pending + count)

    def finished(self, count: int) -> None:
        self._set(self._pending - count)

    def reset(self, count: int) -> None:
        """The count read from the database."""
        self._set(count)

    def _set(self, count: int) -> None:
        self._pending = max(count, 0)
        if self.over_limit:
            self._room.clear()
        else:
            self._room.set()

    async def wait_for_room(self) -> None:
        """Return once the backlog is within the limit, or after ``max_hold`` seconds."""
        if not self.over_limit:
            return
        if self._recount is not None:
            # The count here only grows in a process whose events others finish (an intake
            # process, or workers elsewhere): read it before holding anybody on it.
            await self._read_count()
            if not self.over_limit:
                return
        self.holds += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_hold
        while self.over_limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = remaining if self._recount is None else min(remaining, self._recount_interval)
            try:
                await asyncio.wait_for(self._room.wait(), wait)
            except TimeoutError:
                await self._read_count()
        if self.over_limit:
            log.warning(
                "Inbox backlog of %d events is over its limit of %d after %.0f s; answering "
                "the homeserver anyway",
                self._pending,
                self.limit,
                self.max_hold,
            )

    async def _read_count(self) -> None:
        """Re-read the count (one holder at a time; the others use what it read)."""
        if self._recount is None:
            return
        if self._recounting is None:
            self._recounting = asyncio.Lock()
        if self._recounting.locked():
            async with self._recounting:
                return
        async with self._recounting:
            try:
                self.reset(await self._recount())
            except Exception as exc:  # the database is away: hold on the count we have
                log.warning("Could not re-read the inbox backlog: %s", exc)
