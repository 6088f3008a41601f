"""Handlers registered per event type; anything without a handler is kept and marked ignored."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from .events import InboxEvent, Outcome

log = logging.getLogger(__name__)

#: A handler applies an event's domain effects on ``conn``, inside the DB transaction that also
#: marks the event processed. It must not call the homeserver itself: Matrix side effects go
#: through the outbox, in the same transaction.
Handler = Callable[[asyncpg.Connection, InboxEvent], Awaitable[Outcome]]

#: A batch handler applies a run of events of its type, in order, with the same effects as the
#: handler applying them one after another; it returns one outcome per event.
BatchHandler = Callable[[asyncpg.Connection, Sequence[InboxEvent]], Awaitable[list[Outcome]]]


async def ignore(conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
    return Outcome.IGNORED


class Dispatcher:
    """Routes inbox events to the handler registered for their type."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._batch_handlers: dict[str, BatchHandler] = {}

    def register(
        self, event_type: str, handler: Handler, *, batch: BatchHandler | None = None
    ) -> None:
        if event_type in self._handlers:
            raise ValueError(f"a handler for {event_type} is already registered")
        self._handlers[event_type] = handler
        if batch is not None:
            self._batch_handlers[event_type] = batch

    def handler_for(self, event_type: str) -> Handler:
        return self._handlers.get(event_type, ignore)

    async def dispatch(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        return await self.handler_for(event.event_type)(conn, event)

    async def dispatch_many(
        self, conn: asyncpg.Connection, events: Sequence[InboxEvent]
    ) -> list[Outcome]:
        """Apply events in order: runs of one type with a batch handler together, the others
        one by one."""
        outcomes: list[Outcome] = []
        start = 0
        while start < len(events):
            event_type = events[start].event_type
            end = start + 1
            batch = self._batch_handlers.get(event_type)
            if batch is None:
                outcomes.append(await self.dispatch(conn, events[start]))
            else:
                while end < len(events) and events[end].event_type == event_type:
                    end += 1
                run = await batch(conn, events[start:end])
                if len(run) != end - start:
                    raise RuntimeError(f"the batch handler of {event_type} lost outcomes")
                outcomes.extend(run)
            start = end
        return outcomes
