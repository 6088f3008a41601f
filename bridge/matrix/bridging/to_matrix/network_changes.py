"""Network to Matrix: domain changes made on the network side, queued as outbox actions.

Every method runs in the DB transaction of the domain change, so the Matrix side effect is
committed with it or not at all. A conversation's actions share the lane ``conv:<id>`` and are
sent in order; the portal room is looked up when each action is sent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from ....messaging.models import Conversation, Message, Origin
from ....networking.models import Connection, ConnectionRequest
from ....notifications.models import Notification
from ....users.models import NetworkUser
from ...outbox.actions import (
    CreateRoom,
    Invite,
    Join,
    Kick,
    Leave,
    Redact,
    RoomAction,
    Send,
    SetProfile,
)
from ...outbox.sender import conversation_lane
from ...outbox.store import find_message_send
from ..context import BridgingContext

log = logging.getLogger(__name__)

#: Notification kinds a Matrix user already sees in Matrix itself (the message, the invite).
_SEEN_IN_MATRIX = frozenset({"message", "mention", "connection_request"})


class NetworkChangesToMatrix:
    """Network to Matrix: listens to the messaging, networking and notification services and
    queues what their network-side changes mean in Matrix."""

    def __init__(self, ctx: BridgingContext) -> None:
        self.ctx = ctx

    # --- helpers ------------------------------------------------------------------------------

    def ghost_profile(self, display_name: str, avatar_url: str | None) -> tuple[str, SetProfile]:
        """The Matrix display name of a network user's ghost, and its whole profile."""
        name = self.ctx.config.bridge.displayname_template.replace("{displayname}", display_name)
        profile = SetProfile(displayname=name)
        if avatar_url and avatar_url.startswith("mxc://"):
            profile.avatar_url = avatar_url
        return name, profile

    async def _ghost(self, conn: asyncpg.Connection, user: NetworkUser) -> str:
        """The user's ghost, with its profile queued the first time (or when it changed)."""
        ghost = self.ctx.ids.ghost(user.id)
        known = await self.ctx.portals.get_ghost(conn, ghost)
        name, profile = self.ghost_profile(user.display_name, user.avatar_url)
        if known is None or known.displayname != name:
            await self.ctx.outbox.enqueue(conn, f"ghost:{ghost}", ghost, profile)
            await self.ctx.portals.upsert_ghost(
                conn, ghost, user.id, name, user.avatar_url, registered=False
            )
        return ghost

    async def _members(
        self, conn: asyncpg.Connection, user_ids: Sequence[uuid.UUID]
    ) -> tuple[list[str], list[str]]:
        """(ghosts, Matrix users) for network user ids."""
        ghosts, matrix_users = [], []
        for user in await self.ctx.users.get_many(conn, user_ids):
            if user.matrix_user_id is not None:
                matrix_users.append(user.matrix_user_id)
            else:
                ghosts.append(await self._ghost(conn, user))
        return ghosts, matrix_users

    async def _conv(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        sender: str,
        action: RoomAction,
    ) -> int:
        """Queue ``action`` in the conversation's lane (in its portal, once there is one)."""
        if action.room_id is None:
            portal = await self.ctx.portals.get_portal_by_conversation(conn, conversation_id)
            if portal is not None:
                action.room_id = portal.room_id
        return await self.ctx.outbox.enqueue(
            conn, conversation_lane(conversation_id), sender, action
        )

    async def _event_ref(
        self, conn: asyncpg.Connection, message: Message, pointer: str
    ) -> dict[str, int] | None:
        """The ``refs`` pointing ``pointer`` at the message's Matrix event: none if it has one
        already, the row sending it if that is still to come; None if it will never have one."""
        if message.event_id is not None:
            return {}
        row = await find_message_send(conn, str(message.id))
        return None if row is None else {pointer: row}

    # --- messaging ----------------------------------------------------------------------------

    async def conversation_created(
        self, conn: asyncpg.Connection, conversation: Conversation, origin: Origin
    ) -> None:
        if origin is not Origin.NETWORK:
            return
        if await self.ctx.portals.get_portal_by_conversation(conn, conversation.id) is not None:
            return
        ghosts, matrix_users = await self._members(conn, conversation.participant_ids)
        if not matrix_users:
            return  # nobody in Matrix yet: the portal is made on demand (alias query)
        await self.ctx.outbox.enqueue(
            conn,
            conversation_lane(conversation.id),
            self.ctx.ids.bot,
            CreateRoom(
                conversation_id=str(conversation.id),
                name=conversation.title,
                topic=conversation.topic,
                alias_localpart=self.ctx.ids.alias_localpart(conversation.id),
                invite=[*ghosts, *matrix_users],
                is_direct=not conversation.is_group,
                power_levels={"users": {self.ctx.ids.bot: 100, **{g: 50 for g in ghosts}}},
            ),
        )
        for ghost in ghosts:
            await self._conv(conn, conversation.id, ghost, Join())

    async def participants_changed(
        self,
        conn: asyncpg.Connection,
        conversation: Conversation,
        added: Sequence[uuid.UUID],
        removed: Sequence[uuid.UUID],
        origin: Origin,
    ) -> None:
        if origin is not Origin.NETWORK:
            return
        if await self.ctx.portals.get_portal_by_conversation(conn, conversation.id) is None:
            return
        bot = self.ctx.ids.bot
        ghosts, matrix_users = await self._members(conn, added)
        for user_id in [*ghosts, *matrix_users]:
            await self._conv(conn, conversation.id, bot, Invite(user_id=user_id))
        for ghost in ghosts:
            await self._conv(conn, conversation.id, ghost, Join())
        gone_ghosts, gone_matrix = await self._members(conn, removed)
        for ghost in gone_ghosts:
            await self._conv(conn, conversation.id, ghost, Leave())
        for user_id in gone_matrix:
            await self._conv(
                conn,
                conversation.id,
                bot,
                Kick(user_id=user_id, reason="Removed from the conversation on the network."),
            )

    async def message_posted(self, conn: asyncpg.Connection, message: Message) -> None:
        if message.origin is not Origin.NETWORK:
            return
        sender = await self.ctx.users.get(conn, message.sender_id)
        if sender.matrix_user_id is not None:
            return  # a Matrix user's own words come from Matrix, not from a ghost
        ghost = await self._ghost(conn, sender)
        await self._conv(conn, message.conversation_id, ghost, await self.send_of(conn, message))

    async def send_of(self, conn: asyncpg.Connection, message: Message) -> Send:
        """What the sender's ghost sends for a network message (room left to the caller)."""
        content: dict[str, Any] = {"msgtype": message.msgtype, "body": message.content}
        if message.formatted_content:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = message.formatted_content
        if message.media:
            content.update(
                {k: v for k, v in message.media.items() if k in ("url", "info", "filename")}
            )
        mentioned = [self.ctx.ids.ghost(u) for u in message.mentions]
        for user in await self.ctx.users.get_many(conn, message.mentions) if mentioned else ():
            if user.matrix_user_id:
                mentioned[mentioned.index(self.ctx.ids.ghost(user.id))] = user.matrix_user_id
        content["m.mentions"] = {"user_ids": mentioned} if mentioned else {}
        send = Send(event_type="m.room.message", content=content, message_id=str(message.id))
        if message.reply_to_message_id is not None:
            target = await self.ctx.messaging.get_message(conn, message.reply_to_message_id)
            pointer = "/content/m.relates_to/m.in_reply_to/event_id"
            refs = await self._event_ref(conn, target, pointer)
            if refs is not None:
                content["m.relates_to"] = {"m.in_reply_to": {"event_id": target.event_id}}
                send.refs = refs
        return send

    async def message_edited(self, conn: asyncpg.Connection, message: Message) -> None:
        if message.origin is not Origin.NETWORK:
            return
        ghost = self.ctx.ids.ghost(message.sender_id)
        new: dict[str, Any] = {"msgtype": message.msgtype, "body": message.content}
        if message.formatted_content:
            new.update(format="org.matrix.custom.html", formatted_body=message.formatted_content)
        content = {
            **new,
            "body": f"* {message.content}",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": message.event_id},
        }
        content.pop("formatted_body", None)
        content.pop("format", None)
        refs = await self._event_ref(conn, message, "/content/m.relates_to/event_id")
        if refs is not None:
            send = Send(event_type="m.room.message", content=content, refs=refs)
            await self._conv(conn, message.conversation_id, ghost, send)

    async def message_deleted(
        self, conn: asyncpg.Connection, message: Message, origin: Origin
    ) -> None:
        if origin is not Origin.NETWORK:
            return
        sender = self.ctx.ids.ghost(message.sender_id)
        refs = await self._event_ref(conn, message, "/event_id")
        if refs is not None:
            redact = Redact(event_id=message.event_id, reason="Deleted on the network", refs=refs)
            await self._conv(conn, message.conversation_id, sender, redact)

    async def conversation_deleted(
        self, conn: asyncpg.Connection, conversation: Conversation, actor: uuid.UUID, origin: Origin
    ) -> None:
        """A 1:1 deleted on the network: its ghosts say so in the portal, then leave it."""
        if origin is not Origin.NETWORK:
            return
        if await self.ctx.portals.get_portal_by_conversation(conn, conversation.id) is None:
            return
        deleter = await self.ctx.users.get(conn, actor)
        notice = {
            "msgtype": "m.notice",
            "body": f"{deleter.display_name} deleted this conversation on the network; "
            "messages sent here no longer reach it.",
        }
        ghosts, _ = await self._members(conn, conversation.participant_ids)
        for ghost in ghosts:
            await self._conv(
                conn, conversation.id, ghost, Send(event_type="m.room.message", content=notice)
            )
            await self._conv(conn, conversation.id, ghost, Leave())

    # --- networking -----------------------------------------------------------------------------

    async def request_sent(
        self, conn: asyncpg.Connection, request: ConnectionRequest, created: bool
    ) -> None:
        """A network user asks a Matrix user: the ghost invites them to a direct room."""
        if request.room_id is not None or not created:
            return
        receiver = await self.ctx.users.get(conn, request.receiver_id)
        sender = await self.ctx.users.get(conn, request.sender_id)
        if receiver.matrix_user_id is None or sender.matrix_user_id is not None:
            return
        ghost = await self._ghost(conn, sender)
        await self.ctx.outbox.enqueue(
            conn,
            f"request:{request.id}",
            ghost,
            CreateRoom(
                invite=[receiver.matrix_user_id],
                is_direct=True,
                connection_request_id=str(request.id),
                topic=request.message or None,
            ),
        )
        await self.ctx.tell(
            conn,
            receiver.matrix_user_id,
            f"{sender.display_name} wants to connect"
            + (f': "{request.message}"' if request.message else "")
            + f". Join their chat to accept, leave it to reject, or send `accept {request.id}`"
            f" / `reject {request.id}` here.",
        )

    async def request_answered(self, conn: asyncpg.Connection, request: ConnectionRequest) -> None:
        return None  # RequestAnswersToMatrix handles the rooms of both directions

    async def disconnected(self, conn: asyncpg.Connection, connection: Connection) -> None:
        return None

    # --- notifications ---------------------------------------------------------------------------

    async def notified(self, conn: asyncpg.Connection, notifications: list[Notification]) -> None:
        for notification in notifications:
            if notification.kind in _SEEN_IN_MATRIX:
                continue
            user = await self.ctx.users.find(conn, notification.user_id)
            if user is None or user.matrix_user_id is None:
                continue
            body = (
                f"{notification.title}: {notification.body}"
                if notification.body
                else notification.title
            )
            await self.ctx.tell(conn, user.matrix_user_id, body)
