"""Ghosts invited to Matrix group rooms, under the same conversation rules as the REST API.

A Matrix user who invites a ghost into a group room adds its network user to a group
conversation, so the rules of :mod:`bridge.messaging.conversations` hold: the ghost's user must
be a connection of the inviter (Matrix admins are exempt), and a group starts with three
participants. When the invite cannot be honoured yet, it waits (the ghost stays invited, the
inviter is told why in their management room):

- not connected: a connection request is sent; on accept the ghost joins, on reject or
  withdrawal it declines the invite;
- a new room with only the inviter and one ghost: the group starts, and every ghost waiting
  there joins, once the inviter has invited a second network user they may add.

The inviter taking the invite back (the ghost's membership becomes leave or ban) forgets it.
"""

from __future__ import annotations

import uuid

import asyncpg

from ...errors import BridgeError
from ...messaging.conversations import MIN_GROUP
from ...messaging.models import Origin
from ...networking.models import ConnectionRequest, RequestStatus
from ...users.models import NetworkUser
from .context import HandlerContext
from .invite_store import WaitingInvite, WaitingInviteStore

_REFUSED = {
    RequestStatus.REJECTED: "The connection request was declined.",
    RequestStatus.CANCELLED: "The connection request was withdrawn.",
}


class GroupInvites:
    def __init__(self, ctx: HandlerContext, store: WaitingInviteStore | None = None) -> None:
        self.ctx = ctx
        self.store = store or WaitingInviteStore()

    async def invited(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        inviter_mxid: str,
        inviter: NetworkUser,
        invitee: NetworkUser,
        conversation_id: uuid.UUID | None,
    ) -> None:
        """``inviter_mxid`` invited ``invitee``'s ghost to the group room ``room_id`` (a portal
        of ``conversation_id``, or a room not bridged yet)."""
        ghost = self.ctx.ids.ghost(invitee.id)
        admin = self.ctx.is_admin(inviter_mxid)
        if conversation_id is not None:
            try:  # only a participant adds to a group: no connection request otherwise
                await self.ctx.messaging.changeable(conn, conversation_id, inviter.id)
            except BridgeError as exc:
                await self.ctx.act(conn, room_id, ghost, "leave", reason=exc.message)
                return
        if not admin and not await self.ctx.networking.is_connected(conn, inviter.id, invitee.id):
            try:
                request, _ = await self.ctx.networking.send_request(conn, inviter.id, invitee.id)
            except BridgeError as exc:
                await self.ctx.act(conn, room_id, ghost, "leave", reason=exc.message)
                return
            if request.status is not RequestStatus.ACCEPTED:  # else they had asked: connected
                await self.store.upsert_invite(conn, room_id, invitee.id, inviter.id, inviter_mxid)
                await self._tell(
                    conn,
                    inviter_mxid,
                    f"{invitee.display_name} is not a connection of yours yet: connection request"
                    f" {request.id} is pending (sent {request.request_counter} time(s))."
                    f" {invitee.display_name} will join the room when they accept.",
                )
                return
        if conversation_id is not None:
            await self._add(conn, room_id, conversation_id, inviter.id, invitee.id, admin=admin)
            return
        await self.store.upsert_invite(conn, room_id, invitee.id, inviter.id, inviter_mxid)
        if not await self._start(conn, room_id, inviter.id, inviter_mxid):
            await self._wait_for_more(conn, inviter_mxid, invitee.display_name)

    async def answered(self, conn: asyncpg.Connection, request: ConnectionRequest) -> None:
        """A connection request between two users was answered: their waiting invites go on
        (accepted) or are declined (rejected, withdrawn)."""
        waiting = await self.store.list_for_pair(conn, request.sender_id, request.receiver_id)
        if request.status is RequestStatus.ACCEPTED:
            for invite in waiting:
                await self._go_on(conn, invite)
            return
        reason = _REFUSED.get(request.status)
        if reason is None:
            return
        for invite in waiting:
            await self.store.delete_invites(conn, invite.room_id, [invite.user_id])
            ghost = self.ctx.ids.ghost(invite.user_id)
            await self.ctx.act(conn, invite.room_id, ghost, "leave", reason=reason)

    async def withdrawn(self, conn: asyncpg.Connection, room_id: str, user_id: uuid.UUID) -> bool:
        """The ghost of ``user_id`` left (or was disinvited from) the room: forget its invite."""
        return await self.store.delete_invites(conn, room_id, [user_id]) > 0

    async def _go_on(self, conn: asyncpg.Connection, invite: WaitingInvite) -> None:
        portal = await self.ctx.portals.get_portal_by_room(conn, invite.room_id)
        if portal is not None:
            await self.store.delete_invites(conn, invite.room_id, [invite.user_id])
            await self._add(
                conn,
                invite.room_id,
                portal.conversation_id,
                invite.inviter_id,
                invite.user_id,
                admin=self.ctx.is_admin(invite.inviter),
            )
        elif not await self._start(conn, invite.room_id, invite.inviter_id, invite.inviter):
            user = await self.ctx.users.get(conn, invite.user_id)
            await self._wait_for_more(conn, invite.inviter, user.display_name)

    async def _add(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        conversation_id: uuid.UUID,
        inviter_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        admin: bool,
    ) -> None:
        """Add the user to the portal's conversation and let the ghost join, or decline."""
        ghost = self.ctx.ids.ghost(user_id)
        try:
            await self.ctx.messaging.add_participants(
                conn,
                conversation_id,
                [user_id],
                actor=inviter_id,
                origin=Origin.MATRIX,
                admin=admin,
            )
        except BridgeError as exc:
            await self.ctx.act(conn, room_id, ghost, "leave", reason=exc.message)
            return
        await self.ctx.act(conn, room_id, ghost, "join")

    async def _start(
        self, conn: asyncpg.Connection, room_id: str, inviter_id: uuid.UUID, inviter_mxid: str
    ) -> bool:
        """Start the room's group if the inviter's waiting invites allow it; True if it did."""
        waiting = [w.user_id for w in await self.store.list_in_room(conn, room_id, inviter_id)]
        admin = self.ctx.is_admin(inviter_mxid)
        if not admin:
            blocked = set(await self.ctx.networking.unconnected(conn, inviter_id, waiting))
            waiting = [u for u in waiting if u not in blocked]
        ready = waiting
        if 1 + len(ready) < MIN_GROUP:
            return False
        try:
            conversation = await self.ctx.messaging.create_group(
                conn, inviter_id, ready, origin=Origin.MATRIX, admin=admin
            )
        except BridgeError as exc:  # e.g. a user gone meanwhile: the invites keep waiting
            await self._tell(conn, inviter_mxid, f"The group could not start: {exc.message}")
            return False
        await self.ctx.portals.insert_portal(conn, room_id, conversation.id, None)
        await self.store.delete_invites(conn, room_id, ready)
        for user_id in ready:
            await self.ctx.act(conn, room_id, self.ctx.ids.ghost(user_id), "join")
        return True

    async def _wait_for_more(self, conn: asyncpg.Connection, inviter_mxid: str, name: str) -> None:
        await self._tell(
            conn,
            inviter_mxid,
            f"A group conversation needs at least {MIN_GROUP} participants: {name} will join"
            " once you have invited another network user (one of your connections) to the room.",
        )

    async def _tell(self, conn: asyncpg.Connection, user_id: str, text: str) -> None:
        """Tell the inviter, in their management room (opened for it if they have none)."""
        hint = "This is your management room for the network bridge: send `help` for commands."
        await self.ctx.tell(conn, user_id, text, open_with=f"{text}\n\n{hint}")
