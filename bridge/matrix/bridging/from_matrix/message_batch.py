"""Runs of room messages, stored a batch at a time.

Most of a portal's traffic is plain messages: a known, allowed Matrix user posting text, HTML
or media with no edit or reply relation. For a run of ``m.room.message`` events the batch
handler looks up every room, sender and conversation in three queries, prepares each plain
message in Python and stores them all (messages, ``lastMessageAt``, counts, notifications) in
two statements. Anything else (a management command, an edit, a reply, a sender the bridge
does not know yet or may not serve, a message the rules refuse) goes through the per-event
handler at its place in the run, after the plain messages before it are stored; the lookups
are made again for the rest of the run after an event that may have changed them (a command,
a new user).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ....errors import BridgeError
from ....messaging.models import Conversation, Message, Origin
from ....messaging.rules import prepare_message
from ....users.models import NetworkUser
from ...inbox.events import InboxEvent, Outcome
from ..context import BridgingContext
from ..portal_store import RoomRole
from .messages import RoomEventHandlers, mentioned_users, new_message, relation_of


@dataclass(frozen=True, slots=True)
class _Lookup:
    rooms: dict[str, RoomRole]
    users: dict[str, NetworkUser]
    conversations: dict[uuid.UUID, Conversation]


#: Plain messages prepared before they are stored: bounds how long a large batch keeps the
#: event loop from answering the homeserver (about 20 ms of Python at this size).
_STORE_EVERY = 256


class _Fallback(enum.Enum):
    """The per-event handler decides this event (it may have effects beyond a posted message);
    after it, the lookups still hold (ONE_BY_ONE) or must be made again (LOOK_AGAIN)."""

    ONE_BY_ONE = "one by one"
    LOOK_AGAIN = "one by one, then look again"


class MessageBatch:
    def __init__(self, ctx: BridgingContext, room: RoomEventHandlers) -> None:
        self.ctx = ctx
        self._room = room

    async def __call__(
        self, conn: asyncpg.Connection, events: Sequence[InboxEvent]
    ) -> list[Outcome]:
        """Apply a run of ``m.room.message`` events in order; one outcome per event."""
        outcomes: list[Outcome] = []
        lookup: _Lookup | None = None
        while len(outcomes) < len(events):
            rest = events[len(outcomes) :]
            if lookup is None:
                lookup = await self._lookup(conn, rest)
            posts: list[tuple[Conversation, Message]] = []
            decided: tuple[Conversation, Message] | Outcome | _Fallback | None = None
            for event in rest:
                decided = self._plain(lookup, event)
                if isinstance(decided, _Fallback):
                    break
                if isinstance(decided, Outcome):
                    outcomes.append(decided)
                else:
                    posts.append(decided)
                    outcomes.append(Outcome.PROCESSED)
                    if len(posts) == _STORE_EVERY:
                        break  # store these; the event loop serves intake in between
            if posts:
                await self.ctx.messaging.post_many(conn, posts)
            if isinstance(decided, _Fallback):
                outcomes.append(await self._room.message(conn, events[len(outcomes)]))
                if decided is _Fallback.LOOK_AGAIN:
                    lookup = None
        return outcomes

    async def _lookup(self, conn: asyncpg.Connection, events: Sequence[InboxEvent]) -> _Lookup:
        rooms = await self.ctx.portals.room_roles(conn, list({e.event["room_id"] for e in events}))
        matrix_users = {e.event["sender"] for e in events}
        for event in events:
            content = event.event.get("content")
            if isinstance(content, dict):
                matrix_users.update(mentioned_users(content))
        users = await self.ctx.users.find_matrix_users(
            conn, [u for u in matrix_users if not self.ctx.ids.is_bridged(u)]
        )
        conversation_ids = {r.conversation_id for r in rooms.values() if r.conversation_id}
        conversations = await self.ctx.messaging.find_many(conn, list(conversation_ids))
        return _Lookup(rooms, users, conversations)

    def _plain(
        self, lookup: _Lookup, event: InboxEvent
    ) -> tuple[Conversation, Message] | Outcome | _Fallback:
        """The message to post; an outcome decided without effects; or a fallback.

        Mirrors ``RoomEventHandlers.message``, which decides every case sent back to it.
        """
        ev = event.event
        content: Any = ev.get("content") or {}
        if not isinstance(content, dict) or not isinstance(content.get("body"), str):
            return Outcome.IGNORED
        sender = ev["sender"]
        role = lookup.rooms.get(ev["room_id"])
        if role is not None and role.management_of == sender:
            return _Fallback.LOOK_AGAIN  # a command may change rooms, users, participants
        if self.ctx.ids.is_bridged(sender) or role is None or role.conversation_id is None:
            return Outcome.IGNORED  # our own echo, or not a portal
        user = lookup.users.get(sender)
        conversation = lookup.conversations.get(role.conversation_id)
        if not self.ctx.allowed(sender):
            return _Fallback.ONE_BY_ONE  # a notice to send
        if user is None or conversation is None:
            return _Fallback.LOOK_AGAIN  # a user to create

        relation = relation_of(content)
        if relation.get("rel_type") == "m.replace" or "m.in_reply_to" in relation:
            return _Fallback.ONE_BY_ONE  # an edit or a reply: changes no lookup
        mentions = []
        for mentioned in mentioned_users(content):
            network_id = self.ctx.ids.network_user_of(mentioned)
            if network_id is None and mentioned in lookup.users:
                network_id = lookup.users[mentioned].id
            if network_id is not None:
                mentions.append(network_id)
        new = new_message(event, content, reply_to=None, mentions=mentions)
        try:
            message = prepare_message(conversation, user.id, new, Origin.MATRIX)
        except BridgeError:
            return _Fallback.ONE_BY_ONE  # refused: the per-event handler tells the room why
        return conversation, message
