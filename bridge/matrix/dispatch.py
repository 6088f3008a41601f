"""Handlers registered per event type; anything without a handler is kept and marked ignored."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg

from .events import InboxEvent, Outcome

log = logging.getLogger(__name__)

#: A handler applies an event's domain effects on ``conn``, inside the DB transaction that also
#: marks the event processed. It must not call the homeserver itself: Matrix side effects go
#: through the outbox, in the same transaction.
Handler = Callable[[asyncpg.Connection, InboxEvent], Awaitable[Outcome]]


async def ignore(conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
    return Outcome.IGNORED


class Dispatcher:
    """Routes inbox events to the handler registered for their type."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, event_type: str, handler: Handler) -> None:
        if event_type in self._handlers:
            raise ValueError(f"a handler for {event_type} is already registered")
        self._handlers[event_type] = handler

    def handler_for(self, event_type: str) -> Handler:
        return self._handlers.get(event_type, ignore)

    async def dispatch(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        return await self.handler_for(event.event_type)(conn, event)
