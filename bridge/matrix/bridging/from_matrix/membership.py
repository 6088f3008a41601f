"""m.room.member: direct chats with ghosts, management rooms with the bot, group participants."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from ....errors import BridgeError
from ....messaging.models import Origin
from ...inbox.events import InboxEvent, Outcome
from ..context import HandlerContext
from ..group_invites import GroupInvites
from .commands import HELP_TEXT

log = logging.getLogger(__name__)


class MembershipHandler:
    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx
        self.groups = GroupInvites(ctx)

    async def __call__(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        ev = event.event
        sender: str = ev["sender"]
        target = ev.get("state_key")
        content: dict[str, Any] = ev.get("content") or {}
        membership = content.get("membership")
        room_id = ev["room_id"]
        if not isinstance(target, str) or not isinstance(membership, str):
            return Outcome.IGNORED
        if self.ctx.ids.is_bridged(sender):
            return Outcome.IGNORED  # our own echo
        if membership == "invite" and self.ctx.ids.is_bridged(target):
            if not self.ctx.allowed(sender):
                await self.ctx.act(
                    conn,
                    room_id,
                    target,
                    "leave",
                    reason="Your server is not allowed to use this bridge.",
                )
                return Outcome.PROCESSED
            if self.ctx.ids.is_bot(target):
                return await self._bot_invited(conn, room_id, sender, content)
            return await self._ghost_invited(conn, room_id, sender, target, content)
        return await self._member_changed(conn, room_id, sender, target, membership, content)

    async def _bot_invited(
        self, conn: asyncpg.Connection, room_id: str, sender: str, content: dict[str, Any]
    ) -> Outcome:
        bot = self.ctx.ids.bot
        await self.ctx.act(conn, room_id, bot, "join")
        if content.get("is_direct"):
            await self.ctx.matrix_user(conn, sender)
            await self.ctx.portals.set_management_room(conn, sender, room_id)
            await self.ctx.notice(
                conn, room_id, "This is your management room for the network bridge.\n" + HELP_TEXT
            )
        return Outcome.PROCESSED

    async def _ghost_invited(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        sender: str,
        ghost: str,
        content: dict[str, Any],
    ) -> Outcome:
        network_id = self.ctx.ids.network_user_of(ghost)
        assert network_id is not None
        other = await self.ctx.users.find(conn, network_id)
        if other is None:
            await self.ctx.act(conn, room_id, ghost, "leave", reason="No such user on the network.")
            return Outcome.PROCESSED
        inviter = await self.ctx.matrix_user(conn, sender)
        portal = await self.ctx.portals.get_portal_by_room(conn, room_id)
        if portal is not None or not content.get("is_direct"):
            conversation_id = None if portal is None else portal.conversation_id
            await self.groups.invited(conn, room_id, sender, inviter, other, conversation_id)
            return Outcome.PROCESSED
        if await self.ctx.networking.is_connected(conn, inviter.id, network_id):
            return await self._open_direct(conn, room_id, sender, inviter.id, ghost, network_id)
        reason = content.get("reason") if isinstance(content.get("reason"), str) else None
        try:
            request, _ = await self.ctx.networking.send_request(
                conn, inviter.id, network_id, message=reason, room_id=room_id
            )
        except BridgeError as exc:
            await self.ctx.act(conn, room_id, ghost, "leave", reason=exc.message)
            return Outcome.PROCESSED
        if request.status.value == "accepted":  # they had asked us: now connected
            return await self._open_direct(conn, room_id, sender, inviter.id, ghost, network_id)
        text = (
            f"{other.display_name} is not a connection of yours yet: connection request "
            f"{request.id} is pending (sent {request.request_counter} time(s)). "
            f"{other.display_name} will join the chat when they accept."
        )
        await self.ctx.tell(conn, sender, text, open_with=f"{text}\n\n{HELP_TEXT}")
        return Outcome.PROCESSED

    async def _open_direct(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        sender: str,
        inviter: uuid.UUID,
        ghost: str,
        network_id: uuid.UUID,
    ) -> Outcome:
        conversation, _ = await self.ctx.messaging.open_direct(
            conn, inviter, network_id, origin=Origin.MATRIX
        )
        existing = await self.ctx.portals.get_portal_by_conversation(conn, conversation.id)
        if existing is not None and existing.room_id != room_id:
            await self.ctx.act(
                conn,
                room_id,
                ghost,
                "leave",
                reason="You already have a chat with this user; you were invited there again.",
            )
            await self.ctx.act(conn, existing.room_id, ghost, "invite", user_id=sender)
            return Outcome.PROCESSED
        await self.ctx.portals.insert_portal(conn, room_id, conversation.id, None)
        await self.ctx.act(conn, room_id, ghost, "join")
        return Outcome.PROCESSED

    async def _member_changed(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        sender: str,
        target: str,
        membership: str,
        content: dict[str, Any],
    ) -> Outcome:
        if membership in ("leave", "ban"):
            ghost_of = self.ctx.ids.network_user_of(target)
            if ghost_of is not None and await self.groups.withdrawn(conn, room_id, ghost_of):
                return Outcome.PROCESSED  # an invite that was waiting, taken back
        portal = await self.ctx.portals.get_portal_by_room(conn, room_id)
        if portal is None:
            return await self._answer_in_room(conn, room_id, sender, target, membership)
        conversation = await self.ctx.messaging.get(conn, portal.conversation_id)
        if membership in ("invite", "join"):
            if self.ctx.ids.is_bridged(target) or not self.ctx.allowed(target):
                return Outcome.IGNORED
            if not conversation.is_group:
                return Outcome.IGNORED
            user = await self.ctx.matrix_user(conn, target, _displayname(content))
            await self.ctx.messaging.add_participants(
                conn, conversation.id, [user.id], actor=None, origin=Origin.MATRIX
            )
            return Outcome.PROCESSED
        if membership in ("leave", "ban"):
            member = await self.ctx.participant_of(conn, target)
            if member is None:
                return Outcome.IGNORED
            if not conversation.is_group:
                return Outcome.IGNORED  # a 1:1 conversation keeps both participants
            await self.ctx.messaging.remove_participant(
                conn, conversation.id, member, actor=None, origin=Origin.MATRIX
            )
            return Outcome.PROCESSED
        return Outcome.IGNORED

    async def _answer_in_room(
        self, conn: asyncpg.Connection, room_id: str, sender: str, target: str, membership: str
    ) -> Outcome:
        """A Matrix user invited by a ghost answers the connection request by joining or not."""
        if sender != target or membership not in ("join", "leave"):
            return Outcome.IGNORED
        request = await self.ctx.networking.request_in_room(conn, room_id)
        if request is None or request.status.value != "pending":
            return Outcome.IGNORED
        user = await self.ctx.users.find_matrix_user(conn, target)
        if user is None:
            return Outcome.IGNORED
        if user.id == request.receiver_id:
            answer = (
                self.ctx.networking.accept if membership == "join" else self.ctx.networking.reject
            )
            await answer(conn, receiver=user.id, request_id=request.id)
        elif user.id == request.sender_id and membership == "leave":
            await self.ctx.networking.cancel(conn, sender=user.id, request_id=request.id)
        else:
            return Outcome.IGNORED
        return Outcome.PROCESSED


def _displayname(content: dict[str, Any]) -> str | None:
    name = content.get("displayname")
    return name if isinstance(name, str) and name.strip() else None
