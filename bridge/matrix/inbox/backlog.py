"""Back-pressure: intake holds its answer while the inbox holds more than processing can take.

Synapse keeps one transaction in flight and sends the next when the last is answered, so an
answer held back slows the homeserver down to the bridge's processing rate, while every event
received is already committed (nothing is lost or refused). The hold is bounded well under the
homeserver's 60 s request timeout: past it, intake answers anyway and the backlog grows.

The count of pending events is kept in the process: intake adds what it stored, the workers
subtract what they finished; when the workers find nothing to claim while the count says there
is work, they set it from the database (retries waiting for their time, events another bridge
process took, a batch that rolled back after it was counted).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class Backlog:
    def __init__(self, limit: int, max_hold: float) -> None:
        """``limit`` pending events before intake holds (0: never); ``max_hold`` seconds."""
        self.limit = limit
        self.max_hold = max_hold
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
        self.holds += 1
        try:
            await asyncio.wait_for(self._room.wait(), self.max_hold)
        except TimeoutError:
            log.warning(
                "Inbox backlog of %d events is over its limit of %d after %.0f s; answering "
                "the homeserver anyway",
                self._pending,
                self.limit,
                self.max_hold,
            )
