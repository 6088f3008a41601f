"""``/messaging-api/v1``: conversations and messages (seed: messaging service)."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from aiohttp import web
from msgspec import UNSET

from ..errors import BadRequest, Conflict, Forbidden
from ..messaging.models import NewMessage, Origin
from ..messaging.queries import DateRange
from .context import ApiContext, Principal, principal_of
from .cursor import CONVERSATIONS, MESSAGES, decode, next_cursor
from .decoding import path_id
from .envelope import PageRequest
from .filters import DateFilter, Filters
from .operations import Answer, NoBody, Operation, Reply
from .queries import ConversationsQuery, MessagesQuery, PagedQuery, Query
from .requests import CreateConversation, CreateMessage, UpdateConversation, UpdateMessage
from .resources import Conversation, Message

ORIGIN = Origin.NETWORK


def _range(dates: DateFilter | None) -> DateRange | None:
    if dates is None:
        return None
    return DateRange(dates.periods, dates.since, dates.until, dates.with_null)


def _own_ids(principal: Principal, values: list[uuid.UUID] | Any, name: str) -> bool:
    """``readBy`` / ``deletedFor`` updates: a user marks only themselves."""
    if values is UNSET:
        return False
    if any(v != principal.user_id for v in values):
        raise Forbidden(f"{name} may only name yourself")
    return True


def page_of(query: PagedQuery, cursor: object = UNSET) -> PageRequest:
    return PageRequest(query.pageNumber, query.pageRowCount, by_cursor=cursor is not UNSET)


def _opt(value: Any) -> Any:
    return None if value is UNSET else value


class MessagingApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._db = ctx.db
        self._users = ctx.services.users
        self._messaging = ctx.services.messaging

    def operations(self) -> list[Operation[Any, Any]]:
        conv, msg = "/v1/conversations", "/v1/messages"
        conversation = Answer(Conversation, "conversation")
        message = Answer(Message, "message")
        return [
            Operation("get", conv, "listConversations",
                      "The session user's conversations, most recently active first",
                      self.list_conversations, ConversationsQuery, NoBody,
                      Answer(Conversation, "conversations", many=True),
                      links=("getConversation", "updateConversation", "deleteConversation")),
            Operation("post", conv, "createConversation",
                      "Create a 1:1 or group conversation (you among its participants)",
                      self.create_conversation, Query, CreateConversation,
                      Answer(Conversation, "conversation", status=201), errors=(409,),
                      links=("getConversation", "updateConversation", "deleteConversation")),
            Operation("get", conv + "/{conversationId}", "getConversation",
                      "A conversation (participants only)",
                      self.get_conversation, Query, NoBody, conversation),
            Operation("patch", conv + "/{conversationId}", "updateConversation",
                      "Change a group's participants, title or topic",
                      self.update_conversation, Query, UpdateConversation, conversation,
                      errors=(409,)),
            Operation("delete", conv + "/{conversationId}", "deleteConversation",
                      "Leave a group conversation",
                      self.delete_conversation, Query, NoBody, conversation, errors=(409,)),
            Operation("get", msg, "listMessages", "Messages, oldest first (participants only)",
                      self.list_messages, MessagesQuery, NoBody,
                      Answer(Message, "messages", many=True),
                      links=("getMessage", "updateMessage", "deleteMessage")),
            Operation("post", msg, "createMessage",
                      "Post a message (administrators may post as another sender, and set "
                      "sentAt for imports)",
                      self.create_message, Query, CreateMessage,
                      Answer(Message, "message", status=201), errors=(409,),
                      links=("getMessage", "updateMessage", "deleteMessage")),
            Operation("get", msg + "/{messageId}", "getMessage", "A message (participants only)",
                      self.get_message, Query, NoBody, message),
            Operation("patch", msg + "/{messageId}", "updateMessage",
                      "Edit (the sender), or mark read / deleted for yourself",
                      self.update_message, Query, UpdateMessage, message, errors=(409,)),
            Operation("delete", msg + "/{messageId}", "deleteMessage",
                      "Delete for everyone (the sender) or for yourself",
                      self.delete_message, Query, NoBody, message, errors=(409,)),
        ]  # fmt: skip

    # --- conversations ------------------------------------------------------------------------

    async def list_conversations(
        self, request: web.Request, query: ConversationsQuery, _: NoBody
    ) -> Reply:
        me = principal_of(request).user_id
        page = page_of(query, query.cursor)
        f = Filters()
        is_group = f.bools("isGroup", query.isGroup)
        participants, participants_null = f.ids_with_null("participantIds", query.participantIds)
        every = query.participantIds_op == "contains"
        if participants == [] and participants_null:
            every = False  # participantIds=null: conversations without participants, i.e. none
        last = f.dates("lastMessageAt", query.lastMessageAt)
        after = None if query.cursor is UNSET else decode(query.cursor)
        async with self._db.acquire() as conn:
            found = await self._messaging.list_conversations_page(
                conn,
                me,
                is_group=is_group,
                participant_ids=participants,
                all_participants=every,
                last_message=_range(last),
                after=after,
                limit=page.limit,
                offset=page.offset,
            )
        tail = found.rows[-1] if found.rows else None
        position = (tail.last_message_at or tail.created_at, tail.id) if tail else None
        return Reply(
            [Conversation.of(c) for c in found.rows],
            paging=page.paging(
                found.total, next_cursor=next_cursor(CONVERSATIONS, found.more, position)
            ),
            filters=f.applied,
        )

    async def create_conversation(
        self, request: web.Request, _: Query, body: CreateConversation
    ) -> Reply:
        me = principal_of(request).user_id
        participants = body.participantIds
        title, topic = _opt(body.title), _opt(body.topic)
        if me not in participants:
            raise Forbidden("participantIds must include the session user")
        others = [u for u in participants if u != me]
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, others)
            if body.isGroup:
                if len(participants) < 3:
                    raise BadRequest("a group conversation needs at least three participants")
                created = await self._messaging.create_group(
                    conn, me, others, title=title, topic=topic, origin=ORIGIN
                )
            else:
                if len(participants) != 2:
                    raise BadRequest("a 1:1 conversation has exactly two participants")
                if title is not None or topic is not None:
                    raise BadRequest("title and topic are for group conversations")
                created, new = await self._messaging.open_direct(conn, me, others[0], origin=ORIGIN)
                if not new:
                    raise Conflict(
                        f"these users already have a 1:1 conversation: {created.id}",
                        extra={"detail": str(created.id)},
                    )
        return Reply(Conversation.of(created))

    async def get_conversation(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        conversation_id = path_id(request, "conversationId")
        async with self._db.transaction() as conn:
            conversation = await self._messaging.get_for(conn, me, conversation_id)
        return Reply(Conversation.of(conversation))

    async def update_conversation(
        self, request: web.Request, _: Query, body: UpdateConversation
    ) -> Reply:
        me = principal_of(request).user_id
        conversation_id = path_id(request, "conversationId")
        title, topic = _opt(body.title), _opt(body.topic)
        async with self._db.transaction() as conn:
            conversation = await self._messaging.get_for(conn, me, conversation_id)
            if body.isGroup is not UNSET and body.isGroup != conversation.is_group:
                raise Conflict("isGroup cannot change")
            if title is not None or topic is not None:
                if not conversation.is_group:
                    raise Conflict("1:1 conversations have no title or topic")
                conversation = await self._messaging.update(
                    conn, conversation_id, actor=me, title=title, topic=topic
                )
            if body.participantIds is not UNSET:
                await self._users.require_all(conn, body.participantIds)
                conversation = await self._messaging.set_participants(
                    conn, me, conversation_id, body.participantIds, origin=ORIGIN
                )
        return Reply(Conversation.of(conversation))

    async def delete_conversation(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        """Leave a group conversation (the seed's delete is "group exit")."""
        me = principal_of(request).user_id
        conversation_id = path_id(request, "conversationId")
        async with self._db.transaction() as conn:
            left = await self._messaging.leave(conn, me, conversation_id, origin=ORIGIN)
        return Reply(Conversation.of(left, active=False))

    # --- messages -----------------------------------------------------------------------------

    async def list_messages(self, request: web.Request, query: MessagesQuery, _: NoBody) -> Reply:
        me = principal_of(request).user_id
        page = page_of(query, query.cursor)
        f = Filters()
        conversations = f.ids("conversationId", query.conversationId)
        senders = f.ids("senderUserId", query.senderUserId)
        readers = f.ids("readBy", query.readBy)
        sent = f.dates("sentAt", query.sentAt)
        after = None if query.cursor is UNSET else decode(query.cursor)
        after_id = _opt(query.afterMessageId)
        async with self._db.acquire() as conn:
            if after_id is not None and after is not None:
                await self._messaging.get_message_for(conn, me, after_id)  # 404 / 403 first
                raise BadRequest("give either cursor or afterMessageId, not both")
            found = await self._messaging.list_messages_page(
                conn,
                me,
                conversations,
                sender_ids=senders,
                reader_ids=readers,
                sent=_range(sent),
                after_message_id=after_id,
                after=after,
                limit=page.limit,
                offset=page.offset,
            )
        tail = found.rows[-1] if found.rows else None
        position = (tail.sent_at, tail.id) if tail else None
        return Reply(
            [Message.of(m, me) for m in found.rows],
            paging=page.paging(
                found.total, next_cursor=next_cursor(MESSAGES, found.more, position)
            ),
            filters=f.applied,
        )

    async def create_message(self, request: web.Request, _: Query, body: CreateMessage) -> Reply:
        principal = principal_of(request)
        sender = _opt(body.senderUserId) or principal.user_id
        if sender != principal.user_id and not principal.is_admin:
            raise Forbidden("senderUserId must be the session user")
        sent_at = _opt(body.sentAt)
        if sent_at is not None:
            # The server stamps sentAt; administrators may set it (imports).
            if not principal.is_admin:
                raise Forbidden("sentAt is set by the server; only administrators set it")
            try:
                sent_at = sent_at.astimezone(UTC)
            except OverflowError:
                raise BadRequest("sentAt: out of range") from None
        new = NewMessage(
            content=_opt(body.content) or "",
            msgtype=_opt(body.msgtype) or "m.text",
            formatted_content=_opt(body.formattedContent),
            media=None if body.media is UNSET else body.media.as_dict(),
            reply_to_message_id=_opt(body.replyToMessageId),
            mentions=tuple(_opt(body.mentions) or ()),
            sent_at=sent_at,
        )
        async with self._db.transaction() as conn:
            message = await self._messaging.post(
                conn, sender, body.conversationId, new, origin=ORIGIN
            )
        assert message is not None  # None only for a replayed Matrix event
        return Reply(Message.of(message, principal.user_id))

    async def get_message(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        message_id = path_id(request, "messageId")
        async with self._db.transaction() as conn:
            message = await self._messaging.get_message_for(conn, me, message_id)
        return Reply(Message.of(message, me))

    async def update_message(self, request: web.Request, _: Query, body: UpdateMessage) -> Reply:
        """Edit (the sender), or mark read / deleted for oneself (any participant)."""
        principal = principal_of(request)
        me = principal.user_id
        message_id = path_id(request, "messageId")
        read = _own_ids(principal, body.readBy, "readBy")
        hide = _own_ids(principal, body.deletedFor, "deletedFor")
        async with self._db.transaction() as conn:
            await self._messaging.get_message_for(conn, me, message_id)
            if body.content is not UNSET:
                await self._messaging.edit(
                    conn,
                    me,
                    message_id,
                    content=body.content,
                    formatted_content=_opt(body.formattedContent),
                )
            if read:
                await self._messaging.mark_read(conn, me, message_id)
            if hide:
                await self._messaging.delete_for(conn, me, message_id)
            message = await self._messaging.get_message_for(conn, me, message_id)
        return Reply(Message.of(message, me))

    async def delete_message(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        """The sender deletes for everyone; another participant deletes for themselves."""
        me = principal_of(request).user_id
        message_id = path_id(request, "messageId")
        async with self._db.transaction() as conn:
            message = await self._messaging.get_message_for(conn, me, message_id)
            if message.sender_id == me:
                message = await self._messaging.delete(conn, message_id, actor=me, origin=ORIGIN)
            else:
                message = await self._messaging.delete_for(conn, me, message_id)
        return Reply(Message.of(message, me))
