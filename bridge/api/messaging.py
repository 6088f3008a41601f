"""``/messaging-api/v1``: conversations and messages (reference: messaging)."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from aiohttp import web
from msgspec import UNSET

from ..errors import BadRequest, Forbidden
from ..listing import Window
from ..messaging.conversations import NotConnected
from ..messaging.filters import ConversationFilter, DateRange, MessageFilter
from ..messaging.models import NewMessage, Origin
from ..messaging.rendered import RenderedPage
from .context import ApiContext, Principal, principal_of
from .cursor import CONVERSATIONS, MESSAGES, decode, next_cursor
from .decoding import path_id
from .envelope import PageRequest
from .filters import DateFilter, Filters
from .operations import Answer, NoBody, Operation, Refusal, RenderedRows, Reply
from .queries import ConversationsQuery, MessagesQuery, PagedQuery, Query
from .requests import CreateConversation, CreateMessage, UpdateConversation, UpdateMessage
from .resources import Conversation, Message
from .streaming import WholeReply, every_row

ORIGIN = Origin.NETWORK
#: The connection gate of the conversation rules, as the document names it.
NOT_CONNECTED = Refusal(
    "NotConnected",
    "a participant to add is not a connection of the session user (administrators add "
    "anyone); the detail lists them",
    NotConnected([uuid.UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")]),
)


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


def _of_self(principal: Principal, name: str, values: list[uuid.UUID] | None) -> Any:
    """A filter on what one user has done (read, hid): yourself, or anyone for administrators."""
    if values and not principal.is_admin and any(v != principal.user_id for v in values):
        raise Forbidden(f"{name} may only name yourself (administrators may name anyone)")
    return values


def page_of(query: PagedQuery, cursor: object = UNSET) -> PageRequest:
    return PageRequest(query.pageNumber, query.pageRowCount, by_cursor=cursor is not UNSET)


def _rendered_reply(page: PageRequest, kind: str, rendered: RenderedPage, f: Filters) -> Reply:
    following = next_cursor(kind, rendered.more, rendered.last)
    return Reply(
        RenderedRows(rendered.json, rendered.count),
        paging=page.paging(rendered.total, next_cursor=following),
        filters=f.applied,
    )


def _opt(value: Any) -> Any:
    return None if value is UNSET else value


class MessagingApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._messaging = ctx.services.messaging

    def operations(self) -> list[Operation[Any, Any]]:
        conv, msg = "/v1/conversations", "/v1/messages"
        conversation = Answer(Conversation, "conversation")
        message = Answer(Message, "message")
        return [
            Operation("get", conv, "listConversations",
                      "The session user's conversations, most recently active first",
                      self.list_conversations, ConversationsQuery, NoBody,
                      Answer(Conversation, "conversations", many=True), errors=(503,),
                      links=("getConversation", "updateConversation", "deleteConversation")),
            Operation("post", conv, "createConversation",
                      "Create a 1:1 or group conversation (you among its participants)",
                      self.create_conversation, Query, CreateConversation,
                      Answer(Conversation, "conversation", status=201),
                      errors=(409, NOT_CONNECTED),
                      links=("getConversation", "updateConversation", "deleteConversation")),
            Operation("get", conv + "/{conversationId}", "getConversation",
                      "A conversation (participants only)",
                      self.get_conversation, Query, NoBody, conversation),
            Operation("patch", conv + "/{conversationId}", "updateConversation",
                      "Change a group's participants, title or topic",
                      self.update_conversation, Query, UpdateConversation, conversation,
                      errors=(409, NOT_CONNECTED)),
            Operation("delete", conv + "/{conversationId}", "deleteConversation",
                      "Leave a group (the answer lists those left in it), or delete a 1:1 "
                      "for both of its participants",
                      self.delete_conversation, Query, NoBody, conversation, errors=(409,)),
            Operation("get", msg, "listMessages", "Messages, oldest first (participants only)",
                      self.list_messages, MessagesQuery, NoBody,
                      Answer(Message, "messages", many=True), errors=(503,),
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
        filters = ConversationFilter(
            is_group=is_group,
            participant_ids=participants,
            all_participants=every,
            last_message=_range(last),
        )
        if query.pageNumber == 0:
            every_row(query.cursor)
            return Reply([], filters=f.applied, whole=WholeReply(
                lambda: self._messaging.all_conversations(me, filters),
                Conversation.of,
                cursors=True,
            ))  # fmt: skip
        after = None if query.cursor is UNSET else decode(query.cursor)
        if filters.plain and after is None:
            # The usual call: the page's rows come rendered by the statement that finds them.
            rendered = await self._messaging.rendered_conversations_page(
                me, limit=page.limit, offset=page.offset
            )
            return _rendered_reply(page, CONVERSATIONS, rendered, f)
        window = Window(limit=page.limit, offset=page.offset, after=after)
        found = await self._messaging.conversations_page(me, filters, window)
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
        principal = principal_of(request)
        created = await self._messaging.create_conversation(
            principal.user_id,
            body.participantIds,
            is_group=body.isGroup,
            title=_opt(body.title),
            topic=_opt(body.topic),
            origin=ORIGIN,
            admin=principal.is_admin,
        )
        return Reply(Conversation.of(created))

    async def get_conversation(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        conversation_id = path_id(request, "conversationId")
        conversation = await self._messaging.conversation_for(me, conversation_id)
        return Reply(Conversation.of(conversation))

    async def update_conversation(
        self, request: web.Request, _: Query, body: UpdateConversation
    ) -> Reply:
        principal = principal_of(request)
        conversation = await self._messaging.update_conversation(
            principal.user_id,
            path_id(request, "conversationId"),
            is_group=_opt(body.isGroup),
            participant_ids=_opt(body.participantIds),
            title=_opt(body.title),
            topic=_opt(body.topic),
            origin=ORIGIN,
            admin=principal.is_admin,
        )
        return Reply(Conversation.of(conversation))

    async def delete_conversation(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        """The reference's "hide for all (e.g., group exit or complete deletion)": leave a group,
        delete a 1:1 for both."""
        me = principal_of(request).user_id
        conversation_id = path_id(request, "conversationId")
        gone = await self._messaging.delete_conversation(me, conversation_id, origin=ORIGIN)
        return Reply(Conversation.of(gone, active=False))

    # --- messages -----------------------------------------------------------------------------

    async def list_messages(self, request: web.Request, query: MessagesQuery, _: NoBody) -> Reply:
        principal = principal_of(request)
        me = principal.user_id
        page = page_of(query, query.cursor)
        f = Filters()
        conversations = f.ids("conversationId", query.conversationId)
        senders = f.ids("senderUserId", query.senderUserId)
        readers = f.ids("readBy", query.readBy)
        unread_by = _of_self(principal, "unreadBy", f.ids("unreadBy", query.unreadBy))
        deleted_for = _of_self(principal, "deletedFor", f.ids("deletedFor", query.deletedFor))
        sent = f.dates("sentAt", query.sentAt)
        filters = MessageFilter(
            sender_ids=senders,
            reader_ids=readers,
            sent=_range(sent),
            unread_by=unread_by,
            deleted_for=deleted_for,
        )
        if query.pageNumber == 0:
            every_row(query.cursor)
            return Reply([], filters=f.applied, whole=WholeReply(
                lambda: self._messaging.all_messages(
                    me, conversations, filters, after_message_id=_opt(query.afterMessageId)
                ),
                lambda m: Message.of(m, me),
                cursors=True,
            ))  # fmt: skip
        after = None if query.cursor is UNSET else decode(query.cursor)
        after_id = _opt(query.afterMessageId)
        if after_id is not None and after is not None:
            await self._messaging.message_for(me, after_id)  # 404 / 403 first
            raise BadRequest("give either cursor or afterMessageId, not both")
        if (
            filters.plain
            and (after, after_id) == (None, None)
            and conversations is not None
            and len(set(conversations)) == 1
        ):
            # The usual call: the page's rows come rendered, or None for a conversation missing
            # or not the viewer's (the general path below says which).
            rendered = await self._messaging.rendered_messages_page(
                me, conversations[0], limit=page.limit, offset=page.offset
            )
            if rendered is not None:
                return _rendered_reply(page, MESSAGES, rendered, f)
        window = Window(limit=page.limit, offset=page.offset, after=after)
        found = await self._messaging.messages_page(
            me, conversations, filters, window, after_message_id=after_id
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
            # The server stamps sentAt; administrators may set it (imports). For anyone else it
            # is a field the server owns, refused as such (400), like respondedAt or readBy.
            if not principal.is_admin:
                raise BadRequest("sentAt is set by the server; only administrators set it")
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
        message = await self._messaging.send_message(
            sender, body.conversationId, new, origin=ORIGIN
        )
        return Reply(Message.of(message, principal.user_id))

    async def get_message(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        message_id = path_id(request, "messageId")
        message = await self._messaging.message_for(me, message_id)
        return Reply(Message.of(message, me))

    async def update_message(self, request: web.Request, _: Query, body: UpdateMessage) -> Reply:
        """Edit (the sender), or mark read / deleted for oneself (any participant)."""
        principal = principal_of(request)
        me = principal.user_id
        message_id = path_id(request, "messageId")
        read = _own_ids(principal, body.readBy, "readBy")
        hide = _own_ids(principal, body.deletedFor, "deletedFor")
        message = await self._messaging.update_message(
            me,
            message_id,
            content=_opt(body.content),
            formatted_content=_opt(body.formattedContent),
            read=read,
            hide=hide,
        )
        return Reply(Message.of(message, me))

    async def delete_message(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        """The sender deletes for everyone; another participant deletes for themselves."""
        me = principal_of(request).user_id
        message_id = path_id(request, "messageId")
        message = await self._messaging.remove_message(me, message_id, origin=ORIGIN)
        return Reply(Message.of(message, me))
