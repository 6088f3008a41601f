"""Domain changes that must show in Matrix, turned into outbox actions (same DB transaction)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ....messaging.models import Origin
from ....networking.models import Connection, ConnectionRequest, RequestStatus
from ..context import HandlerContext
from ..group_invites import GroupInvites


class NetworkingMirror:
    """Answers to connection requests made from Matrix show in Matrix: in the direct room the
    request was made from, and in the group rooms where the ghost's invite waited on it."""

    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx
        self.groups = GroupInvites(ctx)

    async def request_sent(
        self, conn: asyncpg.Connection, request: ConnectionRequest, created: bool
    ) -> None:
        return None

    async def request_answered(self, conn: asyncpg.Connection, request: ConnectionRequest) -> None:
        await self.groups.answered(conn, request)
        if request.room_id is None:
            return
        receiver = await self.ctx.users.get(conn, request.receiver_id)
        if receiver.matrix_user_id is None:
            await self._matrix_asked_network(conn, request, request.room_id)
        else:
            await self._network_asked_matrix(
                conn, request, request.room_id, receiver.matrix_user_id
            )

    async def _matrix_asked_network(
        self, conn: asyncpg.Connection, request: ConnectionRequest, room_id: str
    ) -> None:
        """The room is the Matrix user's, the receiver's ghost was invited to it."""
        ghost = self.ctx.ids.ghost(request.receiver_id)
        if request.status is RequestStatus.ACCEPTED:
            if await self._start(conn, request, room_id):
                await self.ctx.act(conn, room_id, ghost, "join")
            return
        reason = {
            RequestStatus.REJECTED: "The connection request was declined.",
            RequestStatus.CANCELLED: "The connection request was withdrawn.",
        }.get(request.status)
        if reason:
            await self.ctx.act(conn, room_id, ghost, "leave", reason=reason)

    async def _network_asked_matrix(
        self, conn: asyncpg.Connection, request: ConnectionRequest, room_id: str, user_id: str
    ) -> None:
        """The room is the sender's ghost's, the Matrix user was invited to it."""
        ghost = self.ctx.ids.ghost(request.sender_id)
        if request.status is RequestStatus.ACCEPTED:
            await self._start(conn, request, room_id)
        elif request.status is RequestStatus.CANCELLED:
            await self.ctx.act(
                conn,
                room_id,
                ghost,
                "kick",
                user_id=user_id,
                reason="The connection request was withdrawn.",
            )
            await self.ctx.act(conn, room_id, ghost, "leave")
        elif request.status is RequestStatus.REJECTED:
            await self.ctx.act(conn, room_id, ghost, "leave")

    async def _start(
        self, conn: asyncpg.Connection, request: ConnectionRequest, room_id: str
    ) -> bool:
        """The 1:1 conversation of the pair, bridged to the request's room; True if new."""
        conversation, _ = await self.ctx.messaging.open_direct(
            conn, request.sender_id, request.receiver_id, origin=Origin.MATRIX
        )
        return await self.ctx.portals.insert_portal(conn, room_id, conversation.id, None)

    async def disconnected(self, conn: asyncpg.Connection, connection: Connection) -> None:
        return None


class OutboxResults:
    """Records what sent outbox rows produced in Matrix (same DB transaction as "sent")."""

    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx

    async def sent(self, conn: asyncpg.Connection, row: Any, result: dict[str, Any]) -> None:
        payload: dict[str, Any] = row.payload
        if row.action == "create_room" and isinstance(payload.get("management_for"), str):
            user_id, room_id = payload["management_for"], str(result["room_id"])
            await self.ctx.portals.set_management_room(conn, user_id, room_id)
            notice = payload.get("initial_notice")
            if isinstance(notice, str) and notice:
                await self.ctx.notice(conn, room_id, notice)
        elif row.action == "create_room" and isinstance(payload.get("connection_request_id"), str):
            await self.ctx.networking.set_request_room(
                conn, uuid.UUID(payload["connection_request_id"]), str(result["room_id"])
            )
        elif row.action == "send" and isinstance(payload.get("message_id"), str):
            event_id = result.get("event_id")
            if isinstance(event_id, str):
                await self.ctx.messaging.set_event_id(
                    conn, uuid.UUID(payload["message_id"]), event_id
                )
