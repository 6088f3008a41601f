"""``/messaging-api/v1``: conversations and messages (reference: messaging)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..errors import BadRequest, Conflict, Forbidden
from ..ids import parse_uuid
from ..messaging.models import NewMessage, Origin
from ..messaging.queries import DateRange
from . import body as b
from . import render
from .context import ApiContext, Principal, principal_of
from .cursor import next_cursor, parse_cursor
from .envelope import Envelope
from .filters import DateFilter, Filters
from .paging import parse_page, single

ORIGIN = Origin.NETWORK
#: Cursor kinds of the two lists.
CONVERSATIONS, MESSAGES = "conversations", "messages"


def _range(dates: DateFilter | None) -> DateRange | None:
    if dates is None:
        return None
    return DateRange(dates.periods, dates.since, dates.until, dates.with_null)


def _path_id(request: web.Request, name: str) -> uuid.UUID:
    return parse_uuid(request.match_info[name], name)


def _own_ids(principal: Principal, values: list[uuid.UUID] | None, name: str) -> bool:
    """``readBy`` / ``deletedFor`` updates: a user marks only themselves."""
    if not values:
        return False
    if any(v != principal.user_id for v in values):
        raise Forbidden(f"{name} may only name yourself")
    return True


class MessagingApi:
    def __init__(self, ctx: ApiContext, envelope: Envelope) -> None:
        self._ctx = ctx
        self._db = ctx.db
        self._users = ctx.services.users
        self._messaging = ctx.services.messaging
        self._env = envelope

    def routes(self) -> list[web.RouteDef]:
        conv, msg = "/v1/conversations", "/v1/messages"
        return [
            web.get(conv, self.list_conversations, allow_head=False),
            web.post(conv, self.create_conversation),
            web.get(conv + "/{conversationId}", self.get_conversation, allow_head=False),
            web.patch(conv + "/{conversationId}", self.update_conversation),
            web.delete(conv + "/{conversationId}", self.delete_conversation),
            web.get(msg, self.list_messages, allow_head=False),
            web.post(msg, self.create_message),
            web.get(msg + "/{messageId}", self.get_message, allow_head=False),
            web.patch(msg + "/{messageId}", self.update_message),
            web.delete(msg + "/{messageId}", self.delete_message),
        ]

    # --- conversations ------------------------------------------------------------------------

    async def list_conversations(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        page = parse_page(request.query)
        f = Filters(request.query)
        is_group = f.bools("isGroup")
        participants, participants_null = f.ids_with_null("participantIds")
        ops = f.choices("participantIds_op", {"contains": True, "overlap": False})
        if ops is not None and len(ops) > 1:
            raise BadRequest("participantIds_op may be given only once")
        every = ops[0] if ops else True
        if participants == [] and participants_null:
            every = False  # participantIds=null: conversations without participants, i.e. none
        last = f.dates("lastMessageAt")
        after = parse_cursor(request.query, CONVERSATIONS, number_name="pageNumber")
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
        return self._env.ok(
            request,
            data_name="conversations",
            data=[render.conversation(c) for c in found.rows],
            action="list",
            paging=page.describe_keyset(
                found.total,
                next_cursor(CONVERSATIONS, found.more, position),
                by_cursor=after is not None,
            ),
            filters=f.applied,
        )

    async def create_conversation(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        body = await b.json_object(request)
        is_group = b.boolean(body, "isGroup", required=True)
        participants = b.ids(body, "participantIds", required=True) or []
        title, topic = b.text(body, "title"), b.text(body, "topic")
        if me not in participants:
            raise BadRequest("participantIds must include the session user")
        others = [u for u in participants if u != me]
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, others)
            if is_group:
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
        return self._env.ok(
            request,
            data_name="conversation",
            data=render.conversation(created),
            action="create",
            status=201,
        )

    async def get_conversation(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        conversation_id = _path_id(request, "conversationId")
        async with self._db.transaction() as conn:
            conversation = await self._messaging.get_for(conn, me, conversation_id)
        return self._env.ok(
            request,
            data_name="conversation",
            data=render.conversation(conversation),
            action="get",
        )

    async def update_conversation(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        conversation_id = _path_id(request, "conversationId")
        body = await b.json_object(request)
        is_group = b.boolean(body, "isGroup")
        participants = b.ids(body, "participantIds")
        title, topic = b.text(body, "title"), b.text(body, "topic")
        if is_group is None and participants is None and title is None and topic is None:
            raise BadRequest("nothing to update: give participantIds, title or topic")
        async with self._db.transaction() as conn:
            conversation = await self._messaging.get_for(conn, me, conversation_id)
            if is_group is not None and is_group != conversation.is_group:
                raise Conflict("isGroup cannot change")
            if title is not None or topic is not None:
                if not conversation.is_group:
                    raise Conflict("1:1 conversations have no title or topic")
                conversation = await self._messaging.update(
                    conn, conversation_id, actor=me, title=title, topic=topic
                )
            if participants is not None:
                await self._users.require_all(conn, participants)
                conversation = await self._messaging.set_participants(
                    conn, me, conversation_id, participants, origin=ORIGIN
                )
        return self._env.ok(
            request,
            data_name="conversation",
            data=render.conversation(conversation),
            action="update",
        )

    async def delete_conversation(self, request: web.Request) -> web.Response:
        """Leave a group conversation (the reference's delete is "group exit")."""
        me = principal_of(request).user_id
        conversation_id = _path_id(request, "conversationId")
        async with self._db.transaction() as conn:
            left = await self._messaging.leave(conn, me, conversation_id, origin=ORIGIN)
        data = render.conversation(left) | {"isActive": False}
        return self._env.ok(request, data_name="conversation", data=data, action="delete")

    # --- messages -----------------------------------------------------------------------------

    async def list_messages(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        page = parse_page(request.query)
        f = Filters(request.query)
        conversations = f.ids("conversationId")
        senders = f.ids("senderUserId")
        readers = f.ids("readBy")
        sent = f.dates("sentAt")
        after_raw = single(request.query, "afterMessageId")
        after = parse_cursor(request.query, MESSAGES, number_name="pageNumber")
        if after_raw is not None and after is not None:
            raise BadRequest("give either cursor or afterMessageId, not both")
        after_id = parse_uuid(after_raw, "afterMessageId") if after_raw is not None else None
        async with self._db.acquire() as conn:
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
        return self._env.ok(
            request,
            data_name="messages",
            data=[render.message(m, me) for m in found.rows],
            action="list",
            paging=page.describe_keyset(
                found.total,
                next_cursor(MESSAGES, found.more, (tail.sent_at, tail.id) if tail else None),
                by_cursor=after is not None,
            ),
            filters=f.applied,
        )

    async def create_message(self, request: web.Request) -> web.Response:
        principal = principal_of(request)
        body = await b.json_object(request)
        conversation_id = b.required_id(body, "conversationId")
        content = b.text(body, "content") or ""
        sender = b.an_id(body, "senderUserId") or principal.user_id
        if sender != principal.user_id and not principal.is_admin:
            raise Forbidden("senderUserId must be the session user")
        media = b.mapping(body, "media")
        new = NewMessage(
            content=content,
            msgtype=b.text(body, "msgtype") or "m.text",
            formatted_content=b.text(body, "formattedContent"),
            media=media,
            reply_to_message_id=b.an_id(body, "replyToMessageId"),
            mentions=tuple(b.ids(body, "mentions") or ()),
            # The server stamps sentAt; administrators may set it (imports).
            sent_at=b.instant(body, "sentAt") if principal.is_admin else None,
        )
        if not content and media is None:
            raise BadRequest("content is required")
        async with self._db.transaction() as conn:
            message = await self._messaging.post(conn, sender, conversation_id, new, origin=ORIGIN)
        assert message is not None  # None only for a replayed Matrix event
        return self._env.ok(
            request,
            data_name="message",
            data=render.message(message, principal.user_id),
            action="create",
            status=201,
        )

    async def get_message(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        message_id = _path_id(request, "messageId")
        async with self._db.transaction() as conn:
            message = await self._messaging.get_message_for(conn, me, message_id)
        return self._env.ok(
            request, data_name="message", data=render.message(message, me), action="get"
        )

    async def update_message(self, request: web.Request) -> web.Response:
        """Edit (the sender), or mark read / deleted for oneself (any participant)."""
        principal = principal_of(request)
        me = principal.user_id
        message_id = _path_id(request, "messageId")
        body = await b.json_object(request)
        content = b.text(body, "content")
        formatted = b.text(body, "formattedContent")
        read = _own_ids(principal, b.ids(body, "readBy"), "readBy")
        hide = _own_ids(principal, b.ids(body, "deletedFor"), "deletedFor")
        if content is None and not read and not hide:
            raise BadRequest("nothing to update: give content, readBy or deletedFor")
        async with self._db.transaction() as conn:
            await self._messaging.get_message_for(conn, me, message_id)
            if content is not None:
                await self._messaging.edit(
                    conn, me, message_id, content=content, formatted_content=formatted
                )
            if read:
                await self._messaging.mark_read(conn, me, message_id)
            if hide:
                await self._messaging.delete_for(conn, me, message_id)
            message = await self._messaging.get_message_for(conn, me, message_id)
        return self._env.ok(
            request, data_name="message", data=render.message(message, me), action="update"
        )

    async def delete_message(self, request: web.Request) -> web.Response:
        """The sender deletes for everyone; another participant deletes for themselves."""
        me = principal_of(request).user_id
        message_id = _path_id(request, "messageId")
        async with self._db.transaction() as conn:
            message = await self._messaging.get_message_for(conn, me, message_id)
            if message.sender_id == me:
                message = await self._messaging.delete(conn, message_id, actor=me, origin=ORIGIN)
            else:
                message = await self._messaging.delete_for(conn, me, message_id)
        return self._env.ok(
            request, data_name="message", data=render.message(message, me), action="delete"
        )
