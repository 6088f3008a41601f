"""Conversation rules, the same whichever side asks (the REST API or a Matrix room).

- A 1:1 conversation has exactly two participants, at most one per pair, and never changes them.
- A group conversation starts with at least three participants, its creator included; it may
  shrink below that later, as people leave.
- Only a participant changes a conversation (adds or removes participants, sets its title or
  topic); a user may always leave a group.
- Connection gate: a user adds to a conversation (creating it, or adding participants) only
  users they are connected to; administrators are exempt. Without ``actor`` a change is a fact
  already made elsewhere (a Matrix user joined or left the room), recorded as it is.

These methods take ``conn`` and run in the caller's transaction; :class:`MessagingService`
adds the entry points that open their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

import asyncpg

from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..ids import clean_text
from ..networking.service import NetworkingService
from .models import Conversation, Message, Origin
from .store import MessagingStore

MAX_TITLE = 255
MIN_GROUP = 3  # the error message below says "three"


def direct_key(a: uuid.UUID, b: uuid.UUID) -> str:
    low, high = sorted((a, b))
    return f"{low}:{high}"


class NotConnected(Forbidden):
    """The connection gate refused: ``user_ids`` are not connections of the actor."""

    def __init__(self, user_ids: Sequence[uuid.UUID]) -> None:
        self.user_ids = tuple(user_ids)
        names = ", ".join(str(u) for u in self.user_ids)
        super().__init__(
            f"you can add only your connections; not connected to {names}"
            " (send a connection request first)",
            extra={"detail": names},
        )


class MessagingListener(Protocol):
    """Told of every change, in its DB transaction (e.g. to mirror network changes to Matrix)."""

    async def conversation_created(
        self, conn: asyncpg.Connection, conversation: Conversation, origin: Origin
    ) -> None: ...

    async def participants_changed(
        self,
        conn: asyncpg.Connection,
        conversation: Conversation,
        added: Sequence[uuid.UUID],
        removed: Sequence[uuid.UUID],
        origin: Origin,
    ) -> None: ...

    async def message_posted(self, conn: asyncpg.Connection, message: Message) -> None: ...

    async def message_edited(self, conn: asyncpg.Connection, message: Message) -> None: ...

    async def message_deleted(
        self, conn: asyncpg.Connection, message: Message, origin: Origin
    ) -> None: ...

    async def conversation_deleted(
        self, conn: asyncpg.Connection, conversation: Conversation, actor: uuid.UUID, origin: Origin
    ) -> None: ...


class ConversationRules:
    """The conversation half of :class:`~bridge.messaging.service.MessagingService`."""

    _store: MessagingStore
    _networking: NetworkingService
    _listeners: list[MessagingListener]

    async def check_connected(
        self,
        conn: asyncpg.Connection,
        actor: uuid.UUID,
        user_ids: Sequence[uuid.UUID],
        *,
        admin: bool = False,
    ) -> None:
        """The connection gate: :class:`NotConnected` naming those of ``user_ids`` (other than
        ``actor``) who are not ``actor``'s connections, unless ``admin``."""
        if admin:
            return
        missing = await self._networking.unconnected(conn, actor, user_ids)
        if missing:
            raise NotConnected(missing)

    async def open_direct(
        self,
        conn: asyncpg.Connection,
        a: uuid.UUID,
        b: uuid.UUID,
        *,
        origin: Origin,
        admin: bool = False,
    ) -> tuple[Conversation, bool]:
        """The 1:1 conversation of ``a`` (who opens it) and ``b``, created if needed;
        (conversation, created). ``b`` must be ``a``'s connection unless ``admin``."""
        if a == b:
            raise BadRequest("a direct conversation needs two different users")
        key = direct_key(a, b)
        existing = await self._store.get_direct_conversation(conn, key)
        if existing is not None:
            return existing, False
        await self.check_connected(conn, a, [b], admin=admin)
        created = await self._store.insert_conversation(
            conn,
            uuid.uuid4(),
            is_group=False,
            title=None,
            topic=None,
            created_by=a,
            direct_key=key,
            participant_ids=[a, b],
        )
        if created is None:
            existing = await self._store.get_direct_conversation(conn, key)
            assert existing is not None
            return existing, False
        for listener in self._listeners:
            await listener.conversation_created(conn, created, origin)
        return created, True

    async def create_group(
        self,
        conn: asyncpg.Connection,
        creator: uuid.UUID,
        participant_ids: Sequence[uuid.UUID],
        *,
        title: str | None = None,
        topic: str | None = None,
        origin: Origin,
        conversation_id: uuid.UUID | None = None,
        admin: bool = False,
    ) -> Conversation:
        """A new group of ``creator`` and ``participant_ids`` (at least three in all, each a
        connection of the creator unless ``admin``)."""
        members = list(dict.fromkeys([creator, *participant_ids]))
        if len(members) < MIN_GROUP:
            raise BadRequest(
                "a group conversation needs at least three participants, its creator included"
            )
        await self.check_connected(conn, creator, members, admin=admin)
        conversation = await self._store.insert_conversation(
            conn,
            conversation_id or uuid.uuid4(),
            is_group=True,
            title=self._title(title),
            topic=self._title(topic, limit=4096),
            created_by=creator,
            direct_key=None,
            participant_ids=members,
        )
        assert conversation is not None
        for listener in self._listeners:
            await listener.conversation_created(conn, conversation, origin)
        return conversation

    async def get(self, conn: asyncpg.Connection, conversation_id: uuid.UUID) -> Conversation:
        conversation = await self._store.get_conversation(conn, conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        return conversation

    async def find(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID
    ) -> Conversation | None:
        return await self._store.get_conversation(conn, conversation_id)

    async def find_many(
        self, conn: asyncpg.Connection, conversation_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Conversation]:
        return await self._store.get_conversations(conn, conversation_ids)

    async def get_for(
        self, conn: asyncpg.Connection, viewer: uuid.UUID, conversation_id: uuid.UUID
    ) -> Conversation:
        """The conversation, for one of its participants only."""
        conversation = await self.get(conn, conversation_id)
        if viewer not in conversation.participant_ids:
            raise Forbidden("only participants can see this conversation")
        return conversation

    async def add_participants(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        user_ids: Sequence[uuid.UUID],
        *,
        actor: uuid.UUID | None,
        origin: Origin,
        admin: bool = False,
    ) -> list[uuid.UUID]:
        """Add users to a group conversation. ``actor``, when given, must be a participant and
        connected to each new participant (unless ``admin``); None records a fact from Matrix."""
        conversation = await self.changeable(conn, conversation_id, actor)
        if actor is not None:
            new = [u for u in user_ids if u not in conversation.participant_ids]
            await self.check_connected(conn, actor, new, admin=admin)
        added = await self._store.add_participants(conn, conversation_id, user_ids)
        if added:
            updated = await self.get(conn, conversation_id)
            for listener in self._listeners:
                await listener.participants_changed(conn, updated, added, [], origin)
        return added

    async def remove_participant(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        actor: uuid.UUID | None,
        origin: Origin,
    ) -> bool:
        """Remove a user from a group conversation (themselves, or by a participant)."""
        await self.changeable(conn, conversation_id, actor)
        removed = await self._store.remove_participant(conn, conversation_id, user_id)
        if removed:
            updated = await self.get(conn, conversation_id)
            for listener in self._listeners:
                await listener.participants_changed(conn, updated, [], [user_id], origin)
        return removed

    async def changeable(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID, actor: uuid.UUID | None
    ) -> Conversation:
        """The group conversation, locked for a change of participants by ``actor`` (a
        participant), or by a fact from Matrix (None); 404, 409 for a 1:1, 403 otherwise."""
        if not await self._store.lock_conversation(conn, conversation_id):
            raise NotFound(f"no conversation {conversation_id}")
        conversation = await self.get(conn, conversation_id)
        if not conversation.is_group:
            raise Conflict("1:1 conversations cannot change participants")
        if actor is not None and actor not in conversation.participant_ids:
            raise Forbidden("only participants can change a conversation")
        return conversation

    async def update(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        *,
        actor: uuid.UUID | None,
        title: str | None = None,
        topic: str | None = None,
    ) -> Conversation:
        conversation = await self.get(conn, conversation_id)
        if actor is not None and actor not in conversation.participant_ids:
            raise Forbidden("only participants can change a conversation")
        await self._store.update_conversation(
            conn, conversation_id, title=self._title(title), topic=self._title(topic, limit=4096)
        )
        return await self.get(conn, conversation_id)

    @staticmethod
    def _title(value: str | None, *, limit: int = MAX_TITLE) -> str | None:
        if value is None:
            return None
        return clean_text(value, limit=limit, multiline=limit > MAX_TITLE).strip()

    async def leave(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        origin: Origin,
    ) -> Conversation:
        """A participant leaves a group conversation; returns it as it was before they left."""
        conversation = await self.get_for(conn, user_id, conversation_id)
        if not conversation.is_group:
            raise Conflict("a 1:1 conversation cannot be left")
        await self.remove_participant(conn, conversation_id, user_id, actor=user_id, origin=origin)
        return conversation

    async def delete_direct(
        self,
        conn: asyncpg.Connection,
        actor: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        origin: Origin,
    ) -> Conversation:
        """A participant deletes a 1:1 conversation for both (the seed's "hide for all"): it
        is no longer listed, takes no new messages, and its pair may open a new one."""
        conversation = await self.get_for(conn, actor, conversation_id)
        if conversation.is_group:
            raise Conflict("a group conversation is left, not deleted")
        if await self._store.deactivate_conversation(conn, conversation_id):
            conversation = await self.get(conn, conversation_id)
            for listener in self._listeners:
                await listener.conversation_deleted(conn, conversation, actor, origin)
        return await self.get(conn, conversation_id)

    async def set_participants(
        self,
        conn: asyncpg.Connection,
        actor: uuid.UUID,
        conversation_id: uuid.UUID,
        participant_ids: Sequence[uuid.UUID],
        *,
        origin: Origin,
        admin: bool = False,
    ) -> Conversation:
        """Make a group's participants exactly ``participant_ids`` (``actor`` must be one, and
        connected to those added unless ``admin``)."""
        conversation = await self.get_for(conn, actor, conversation_id)
        wanted = list(dict.fromkeys(participant_ids))
        if not wanted:
            raise BadRequest("a conversation needs participants")
        if set(conversation.participant_ids) == set(wanted):
            return conversation
        if not conversation.is_group:
            raise Conflict("1:1 conversations cannot change participants")
        added = [u for u in wanted if u not in conversation.participant_ids]
        if added:
            await self.add_participants(
                conn, conversation_id, added, actor=actor, origin=origin, admin=admin
            )
        # The actor last: once out, they may no longer change the conversation.
        removed = sorted(
            (u for u in conversation.participant_ids if u not in wanted), key=lambda u: u == actor
        )
        for user_id in removed:
            await self.remove_participant(
                conn, conversation_id, user_id, actor=actor, origin=origin
            )
        return await self.get(conn, conversation_id)
