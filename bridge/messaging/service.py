"""Messaging rules: who may see, post, edit and delete; notifications for the others.

Transactions, as in every service: a method that takes ``conn`` runs in the caller's DB
transaction (an inbox worker's for events from Matrix, so an event's effects and its
"processed" mark commit together); a method without ``conn`` is an entry point (the REST API's)
that takes its own connection and, when it writes, opens the transaction itself, the Matrix
side effects queued by the listeners in it. The conversation rules (group size, who changes
participants, the connection gate) are in :mod:`.conversations`, the message rules in
:mod:`.messages`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ..db.database import Database
from ..errors import BadRequest, Conflict, Forbidden
from ..listing import Page, Position, WholeList, Window
from ..networking.service import NetworkingService
from ..notifications.service import NotificationService
from ..users.service import UserService
from .conversations import MessagingListener, direct_key
from .filters import ConversationFilter, MessageFilter
from .messages import MessageRules, PostWriter
from .models import Conversation, Message, NewMessage, Origin
from .queries import FROM_THE_END, MessagingQueries
from .rendered import RenderedPage, RenderedQueries
from .store import MessagingStore
from .whole_store import MessagingWholeLists

__all__ = ["MessagingListener", "MessagingService", "PostWriter", "direct_key"]


class MessagingService(MessageRules):
    """Conversations and messages: the rules (:class:`MessageRules`, and through it
    :class:`~.conversations.ConversationRules`) and the entry points that own a transaction."""

    def __init__(
        self,
        db: Database,
        store: MessagingStore,
        notifications: NotificationService,
        users: UserService,
        networking: NetworkingService,
        queries: MessagingQueries | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._queries = queries or MessagingQueries()
        self._whole = MessagingWholeLists()
        self._rendered = RenderedQueries()
        self._notifications = notifications
        self._users = users
        self._networking = networking
        self._listeners: list[MessagingListener] = []
        self._post_writer: PostWriter | None = None

    def add_listener(self, listener: MessagingListener) -> None:
        self._listeners.append(listener)

    def write_posts_with(self, writer: PostWriter) -> None:
        """Store network posts (:meth:`send_message`) through ``writer``, in one statement."""
        self._post_writer = writer

    # --- entry points (own connection and transaction) ------------------------------------------

    async def create_conversation(
        self,
        creator: uuid.UUID,
        participant_ids: Sequence[uuid.UUID],
        *,
        is_group: bool,
        title: str | None = None,
        topic: str | None = None,
        origin: Origin,
        admin: bool = False,
    ) -> Conversation:
        """A new conversation of ``participant_ids``, which must include ``creator``: a group,
        or a 1:1 (409 naming the existing one when the pair already has one)."""
        if creator not in participant_ids:
            raise Forbidden("participantIds must include the session user")
        members = list(dict.fromkeys(participant_ids))
        others = [u for u in members if u != creator]
        if not is_group:
            if len(members) != 2:
                raise BadRequest("a 1:1 conversation has exactly two participants")
            if title is not None or topic is not None:
                raise BadRequest("title and topic are for group conversations")
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, others)
            if is_group:
                return await self.create_group(
                    conn, creator, others, title=title, topic=topic, origin=origin, admin=admin
                )
            created, new = await self.open_direct(
                conn, creator, others[0], origin=origin, admin=admin
            )
        if not new:
            raise Conflict(
                f"these users already have a 1:1 conversation: {created.id}",
                extra={"detail": str(created.id)},
            )
        return created

    async def conversation_for(self, viewer: uuid.UUID, conversation_id: uuid.UUID) -> Conversation:
        """:meth:`get_for` on a pooled connection."""
        async with self._db.acquire() as conn:
            return await self.get_for(conn, viewer, conversation_id)

    async def update_conversation(
        self,
        actor: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        is_group: bool | None = None,
        participant_ids: Sequence[uuid.UUID] | None = None,
        title: str | None = None,
        topic: str | None = None,
        origin: Origin,
        admin: bool = False,
    ) -> Conversation:
        """A participant changes a group: title, topic, participants (``isGroup`` never
        changes; a 1:1 keeps its participants and has no title)."""
        async with self._db.transaction() as conn:
            conversation = await self.get_for(conn, actor, conversation_id)
            if is_group is not None and is_group != conversation.is_group:
                raise Conflict("isGroup cannot change")
            if title is not None or topic is not None:
                if not conversation.is_group:
                    raise Conflict("1:1 conversations have no title or topic")
                conversation = await self.update(
                    conn, conversation_id, actor=actor, title=title, topic=topic
                )
            if participant_ids is not None:
                await self._users.require_all(conn, participant_ids)
                conversation = await self.set_participants(
                    conn, actor, conversation_id, participant_ids, origin=origin, admin=admin
                )
            return conversation

    async def delete_conversation(
        self, user_id: uuid.UUID, conversation_id: uuid.UUID, *, origin: Origin
    ) -> Conversation:
        """The seed's delete ("group exit or complete deletion"): the user leaves a group (the
        answer lists those left in it); a 1:1 is deleted for both (:meth:`delete_direct`)."""
        async with self._db.transaction() as conn:
            conversation = await self.get_for(conn, user_id, conversation_id)
            if not conversation.is_group:
                return await self.delete_direct(conn, user_id, conversation_id, origin=origin)
            await self.leave(conn, user_id, conversation_id, origin=origin)
            return await self.get(conn, conversation_id)

    async def conversations_page(
        self,
        user_id: uuid.UUID,
        filters: ConversationFilter,
        window: Window,
    ) -> Page[Conversation]:
        """:meth:`list_conversations_page` on a pooled connection (a read)."""
        async with self._db.acquire() as conn:
            return await self.list_conversations_page(conn, user_id, filters, window)

    async def messages_page(
        self,
        viewer: uuid.UUID,
        conversation_ids: Sequence[uuid.UUID] | None,
        filters: MessageFilter,
        window: Window,
        *,
        after_message_id: uuid.UUID | None = None,
    ) -> Page[Message]:
        """:meth:`list_messages_page` on a pooled connection (a read)."""
        async with self._db.acquire() as conn:
            return await self.list_messages_page(
                conn, viewer, conversation_ids, filters, window, after_message_id=after_message_id
            )

    async def rendered_conversations_page(
        self, user_id: uuid.UUID, *, limit: int, offset: int
    ) -> RenderedPage:
        """:meth:`conversations_page` unfiltered, its rows already the REST API's JSON."""
        async with self._db.acquire() as conn:
            return await self._rendered.conversations(conn, user_id, limit=limit, offset=offset)

    async def rendered_messages_page(
        self, viewer: uuid.UUID, conversation_id: uuid.UUID, *, limit: int, offset: int
    ) -> RenderedPage | None:
        """The usual call of :meth:`messages_page` (one conversation, unfiltered, a page near
        its start), its rows already the REST API's JSON. None when it is not that call, or the
        conversation is missing or not the viewer's: :meth:`messages_page` then answers (or
        says which)."""
        if offset >= FROM_THE_END:
            return None
        async with self._db.acquire() as conn:
            return await self._rendered.first_messages(
                conn, viewer, conversation_id, limit=limit, offset=offset
            )

    async def send_message(
        self, sender: uuid.UUID, conversation_id: uuid.UUID, new: NewMessage, *, origin: Origin
    ) -> Message:
        """:meth:`post` a message that has no Matrix event (so it is never a replay): in
        one statement when a :class:`PostWriter` is installed."""
        if self._post_writer is not None and new.event_id is None:
            async with self._db.acquire() as conn:
                return await self.post_in_one_statement(
                    self._post_writer, conn, sender, conversation_id, new, origin
                )
        async with self._db.transaction() as conn:
            message = await self.post(conn, sender, conversation_id, new, origin=origin)
        assert message is not None  # None only for a replayed Matrix event
        return message

    async def message_for(self, viewer: uuid.UUID, message_id: uuid.UUID) -> Message:
        """:meth:`get_message_for` on a pooled connection."""
        async with self._db.acquire() as conn:
            return await self.get_message_for(conn, viewer, message_id)

    async def update_message(
        self,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        *,
        content: str | None = None,
        formatted_content: str | None = None,
        read: bool = False,
        hide: bool = False,
    ) -> Message:
        """Edit (its sender only), and/or mark read or hide for oneself (any participant); the
        message as the user now sees it."""
        async with self._db.transaction() as conn:
            await self.get_message_for(conn, user_id, message_id)
            if content is not None:
                await self.edit(
                    conn, user_id, message_id, content=content, formatted_content=formatted_content
                )
            if read:
                await self.mark_read(conn, user_id, message_id)
            if hide:
                await self.delete_for(conn, user_id, message_id)
            return await self.get_message_for(conn, user_id, message_id)

    async def remove_message(
        self, user_id: uuid.UUID, message_id: uuid.UUID, *, origin: Origin
    ) -> Message:
        """Its sender deletes a message for everyone; another participant, for themselves."""
        async with self._db.transaction() as conn:
            message = await self.get_message_for(conn, user_id, message_id)
            if message.sender_id == user_id:
                return await self.delete(conn, message_id, actor=user_id, origin=origin)
            return await self.delete_for(conn, user_id, message_id)

    # --- whole lists (pageNumber=0): checked and counted on entering, read while inside -------

    @asynccontextmanager
    async def all_conversations(
        self,
        user_id: uuid.UUID,
        filters: ConversationFilter,
    ) -> AsyncIterator[WholeList[Conversation]]:
        """Every conversation :meth:`conversations_page` would page through, in one snapshot."""
        async with self._db.snapshot() as conn:
            yield await self._whole.conversations(conn, user_id, filters)

    @asynccontextmanager
    async def all_messages(
        self,
        viewer: uuid.UUID,
        conversation_ids: Sequence[uuid.UUID] | None,
        filters: MessageFilter,
        *,
        after_message_id: uuid.UUID | None = None,
    ) -> AsyncIterator[WholeList[Message]]:
        """Every message :meth:`messages_page` would page through, in one snapshot; the
        conversations and ``after_message_id`` are checked (404/403) on entering."""
        async with self._db.snapshot() as conn:
            visible = await self.visible_conversation_ids(conn, viewer, conversation_ids)
            after: Position | None = None
            if after_message_id is not None:
                anchor = await self.get_message_for(conn, viewer, after_message_id)
                after = (anchor.sent_at, anchor.id)
            yield await self._whole.messages(conn, viewer, visible, filters, after=after)
