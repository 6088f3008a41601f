"""Message rules: only participants post and read; only the sender edits or deletes for
everyone; anyone hides a message for themselves; the other participants are notified.

These methods take ``conn`` and run in the caller's transaction; :class:`MessagingService`
adds the entry points that open their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..ids import clean_text
from ..listing import Page, Window
from ..notifications.models import Notification
from ..notifications.service import NotificationService
from .conversations import ConversationRules, MessagingListener
from .filters import ConversationFilter, MessageFilter
from .html import sanitize_html
from .models import Conversation, Message, NewMessage, Origin, Reaction
from .queries import MessagingQueries
from .rules import MAX_CONTENT, message_notifications, prepare_message


def _now() -> datetime:
    return datetime.now(UTC)


#: Prepares a post once its conversation is read: the message and its notifications (in
#: groups, see :meth:`NotificationService.prepare`), or the error the sender gets.
PreparePost = Callable[[Conversation], Awaitable[tuple[Message, list[list[Notification]]]]]


class PostWriter(Protocol):
    """Stores a network post with everything it causes in one statement, where the rules
    would make one per effect and their listener another few (the Matrix bridge's).

    It takes the place of ``listener``'s ``message_posted`` for the posts it writes; the other
    listeners are still told, after the statement.
    """

    @property
    def listener(self) -> MessagingListener:
        """The listener whose ``message_posted`` it does."""

    async def write_post(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        sender: uuid.UUID,
        prepare: PreparePost,
    ) -> tuple[Message, list[list[Notification]]] | None:
        """Read the conversation, ``prepare`` the post, and store the message, the
        conversation's counters, the notifications and the listener's side effects in one
        statement on ``conn`` (outside a transaction). None, with nothing stored, when the
        conversation does not exist or no longer takes the sender's post (deleted, or the
        sender left it) by the time of the statement."""


class MessageRules(ConversationRules):
    """The message half of :class:`~bridge.messaging.service.MessagingService`."""

    _queries: MessagingQueries
    _notifications: NotificationService

    async def post(
        self,
        conn: asyncpg.Connection,
        sender: uuid.UUID,
        conversation_id: uuid.UUID,
        new: NewMessage,
        *,
        origin: Origin,
    ) -> Message | None:
        """Post a message; None if its Matrix event was already taken (a replay)."""
        conversation = await self.get(conn, conversation_id)
        message = await self.prepare_post(conn, conversation, sender, new, origin)
        (posted,) = await self.post_many(conn, [(conversation, message)])
        return posted

    async def prepare_post(
        self,
        conn: asyncpg.Connection,
        conversation: Conversation,
        sender: uuid.UUID,
        new: NewMessage,
        origin: Origin,
    ) -> Message:
        """The message ``sender`` posts to ``conversation``, not yet stored; the error the
        sender gets when it cannot be posted (409 once the conversation was deleted)."""
        if not conversation.is_active:
            raise Conflict("this conversation was deleted: it takes no new messages")
        reply_to = new.reply_to_message_id
        if reply_to is not None:
            target = await self._store.get_message(conn, reply_to)
            if target is None or target.conversation_id != conversation.id:
                reply_to = None  # a reply to something outside the conversation is a plain message
        return prepare_message(
            conversation, sender, replace(new, reply_to_message_id=reply_to), origin
        )

    async def post_in_one_statement(
        self,
        writer: PostWriter,
        conn: asyncpg.Connection,
        sender: uuid.UUID,
        conversation_id: uuid.UUID,
        new: NewMessage,
        origin: Origin,
    ) -> Message:
        """:meth:`post` a message with no Matrix event through ``writer``, on ``conn`` outside
        a transaction: the writer reads the conversation with what it needs, these rules
        prepare the message and its notifications, and one statement stores it all."""

        async def prepare(
            conversation: Conversation,
        ) -> tuple[Message, list[list[Notification]]]:
            message = await self.prepare_post(conn, conversation, sender, new, origin)
            notes = self._notifications.prepare(message_notifications(conversation, message))
            return message, notes

        written = await writer.write_post(conn, conversation_id, sender, prepare)
        if written is None:
            # Not taken: the conversation is gone, was deleted, or the sender left it since it
            # was read. The rules say which, on what is stored now.
            conversation = await self.get(conn, conversation_id)
            await self.prepare_post(conn, conversation, sender, new, origin)
            raise Conflict("the conversation changed while the message was posted; send it again")
        message, notes = written
        await self._notifications.announce(conn, [n for group in notes for n in group])
        for listener in self._listeners:
            if listener is not writer.listener:
                await listener.message_posted(conn, message)
        return message

    async def post_many(
        self, conn: asyncpg.Connection, messages: Sequence[tuple[Conversation, Message]]
    ) -> list[Message | None]:
        """Store prepared messages, notify the other participants, tell the listeners; each
        result is the message, or None where its Matrix event was already taken (a replay).

        A few statements for the whole batch, whatever its size.
        """
        inserted = await self._store.insert_messages(conn, [m for _, m in messages])
        posted = [m if m.id in inserted else None for _, m in messages]
        await self._notifications.notify_many(
            conn,
            [
                request
                for conversation, message in messages
                if message.id in inserted
                for request in message_notifications(conversation, message)
            ],
        )
        for message in posted:
            if message is not None:
                for listener in self._listeners:
                    await listener.message_posted(conn, message)
        return posted

    async def get_message(self, conn: asyncpg.Connection, message_id: uuid.UUID) -> Message:
        message = await self._store.get_message(conn, message_id)
        if message is None:
            raise NotFound(f"no message {message_id}")
        return message

    async def get_message_for(
        self, conn: asyncpg.Connection, viewer: uuid.UUID, message_id: uuid.UUID
    ) -> Message:
        message = await self.get_message(conn, message_id)
        await self.get_for(conn, viewer, message.conversation_id)
        return message

    async def find_by_event(self, conn: asyncpg.Connection, event_id: str) -> Message | None:
        return await self._store.get_message_by_event(conn, event_id)

    async def edit(
        self,
        conn: asyncpg.Connection,
        editor: uuid.UUID,
        message_id: uuid.UUID,
        *,
        content: str,
        formatted_content: str | None = None,
        edit_event_id: str | None = None,
    ) -> Message | None:
        """Only the sender edits; ``editedAt`` set and ``recordVersion`` + 1."""
        message = await self.get_message(conn, message_id)
        if message.sender_id != editor:
            raise Forbidden("only the sender can edit a message")
        if not message.is_active:
            raise Conflict("the message was deleted")
        text = clean_text(content, limit=MAX_CONTENT)
        if not text.strip():
            raise BadRequest("message content is empty")
        formatted = sanitize_html(formatted_content) if formatted_content else None
        updated = await self._store.update_message_content(
            conn,
            message_id,
            content=text,
            formatted_content=formatted,
            edited_at=_now(),
            edit_event_id=edit_event_id,
        )
        if updated is not None:
            for listener in self._listeners:
                await listener.message_edited(conn, updated)
        return updated

    async def delete(
        self,
        conn: asyncpg.Connection,
        message_id: uuid.UUID,
        *,
        actor: uuid.UUID | None,
        origin: Origin,
    ) -> Message:
        """Delete for everyone: by its sender (``actor``), or as a fact from Matrix (None)."""
        message = await self.get_message(conn, message_id)
        if actor is not None and message.sender_id != actor:
            raise Forbidden("only the sender can delete a message for everyone")
        if await self._store.deactivate_message(conn, message_id):
            message = await self.get_message(conn, message_id)
            for listener in self._listeners:
                await listener.message_deleted(conn, message, origin)
        return message

    async def delete_for(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, message_id: uuid.UUID
    ) -> Message:
        """Hide a message from one participant only."""
        message = await self.get_message_for(conn, user_id, message_id)
        await self._store.insert_deletion(conn, message_id, user_id)
        return await self.get_message(conn, message.id)

    async def set_event_id(
        self, conn: asyncpg.Connection, message_id: uuid.UUID, event_id: str
    ) -> None:
        await self._store.set_message_event_id(conn, message_id, event_id)

    async def list_messages(
        self,
        conn: asyncpg.Connection,
        viewer: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        limit: int = 25,
        offset: int = 0,
    ) -> list[Message]:
        await self.get_for(conn, viewer, conversation_id)
        return await self._store.list_messages(
            conn, conversation_id, viewer_id=viewer, limit=limit, offset=offset
        )

    # --- reactions and receipts -----------------------------------------------------------------

    async def react(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        key: str,
        *,
        event_id: str | None = None,
    ) -> Reaction | None:
        await self.get_message_for(conn, user_id, message_id)
        key = clean_text(key, limit=64, multiline=False)
        if not key:
            raise BadRequest("a reaction needs a key")
        return await self._store.insert_reaction(
            conn, uuid.uuid4(), message_id, user_id, key, event_id
        )

    async def unreact_event(self, conn: asyncpg.Connection, event_id: str) -> Reaction | None:
        return await self._store.delete_reaction_by_event(conn, event_id)

    async def reactions(self, conn: asyncpg.Connection, message_id: uuid.UUID) -> list[Reaction]:
        return await self._store.list_reactions(conn, message_id)

    async def mark_read(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, message_id: uuid.UUID
    ) -> bool:
        """Move the user's read marker to ``message_id`` (never backwards)."""
        message = await self.get_message_for(conn, user_id, message_id)
        return await self._store.upsert_read_marker(
            conn, message.conversation_id, user_id, message.id, message.sent_at
        )

    # --- REST API ------------------------------------------------------------------------------
    # (appended: filtered, paged lists, leaving, and replacing a group's participants)

    async def visible_conversation_ids(
        self,
        conn: asyncpg.Connection,
        viewer: uuid.UUID,
        requested: Sequence[uuid.UUID] | None,
    ) -> list[uuid.UUID]:
        """The conversations a listing may read: ``requested`` (each checked, 404/403), or all
        of the viewer's when None."""
        if requested is None:
            return await self._store.list_conversation_ids(conn, viewer)
        for conversation_id in requested:
            await self.get_for(conn, viewer, conversation_id)
        return list(dict.fromkeys(requested))

    async def list_conversations_page(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        filters: ConversationFilter,
        window: Window,
    ) -> Page[Conversation]:
        """One page of a user's conversations (most recent first), the matching total and
        whether more follow."""
        return await self._queries.list_conversations_page(
            conn, user_id, filters, after=window.after, limit=window.limit, offset=window.offset
        )

    async def list_messages_page(
        self,
        conn: asyncpg.Connection,
        viewer: uuid.UUID,
        conversation_ids: Sequence[uuid.UUID] | None,
        filters: MessageFilter,
        window: Window,
        *,
        after_message_id: uuid.UUID | None = None,
    ) -> Page[Message]:
        """One page of the messages the viewer may read, oldest first, the matching total and
        whether more follow.

        ``conversation_ids`` None means all of the viewer's conversations; each one named must
        be theirs. ``after_message_id`` (a message the viewer can see) seeks past it, and the
        total counts the messages after it; the window's ``after`` (a cursor's position) seeks
        past a ``(sentAt, id)`` position, and the total counts the whole list.
        """
        after, limit, offset = window.after, window.limit, window.offset
        visible = await self.visible_conversation_ids(conn, viewer, conversation_ids)
        count_after = False
        if after_message_id is not None:
            anchor = await self.get_message_for(conn, viewer, after_message_id)
            after, count_after = (anchor.sent_at, anchor.id), True
        return await self._queries.list_messages_page(
            conn,
            viewer,
            visible,
            filters,
            after=after,
            count_after=count_after,
            limit=limit,
            offset=offset,
        )
