"""Domain changes that must show in Matrix, turned into outbox actions (same DB transaction)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ....messaging.models import Origin
from ....networking.models import Connection, ConnectionRequest, RequestStatus
from ...outbox.actions import CreateRoom, Join, Kick, Leave, Send
from ...outbox.store import OutboxRow
from ..context import BridgingContext


class RequestAnswersToMatrix:
    """Answers to connection requests, whichever side gave them, shown in the request's Matrix
    room (the ghost joins or leaves, the conversation is bridged to the room)."""

    def __init__(self, ctx: BridgingContext) -> None:
        self.ctx = ctx

    async def request_sent(
        self, conn: asyncpg.Connection, request: ConnectionRequest, created: bool
    ) -> None:
        return None

    async def request_answered(self, conn: asyncpg.Connection, request: ConnectionRequest) -> None:
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
                await self.ctx.act(conn, ghost, Join(room_id=room_id))
            return
        reason = {
            RequestStatus.REJECTED: "The connection request was declined.",
            RequestStatus.CANCELLED: "The connection request was withdrawn.",
        }.get(request.status)
        if reason:
            await self.ctx.act(conn, ghost, Leave(room_id=room_id, reason=reason))

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
                ghost,
                Kick(
                    room_id=room_id, user_id=user_id, reason="The connection request was withdrawn."
                ),
            )
            await self.ctx.act(conn, ghost, Leave(room_id=room_id))
        elif request.status is RequestStatus.REJECTED:
            await self.ctx.act(conn, ghost, Leave(room_id=room_id))

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

    def __init__(self, ctx: BridgingContext) -> None:
        self.ctx = ctx

    async def sent(self, conn: asyncpg.Connection, row: OutboxRow, result: dict[str, Any]) -> None:
        match row.action:
            case CreateRoom(management_for=str(user_id), initial_notice=notice):
                room_id = str(result["room_id"])
                await self.ctx.portals.set_management_room(conn, user_id, room_id)
                if notice:
                    await self.ctx.notice(conn, room_id, notice)
            case CreateRoom(connection_request_id=str(request_id)):
                await self.ctx.networking.set_request_room(
                    conn, uuid.UUID(request_id), str(result["room_id"])
                )
            case Send(message_id=str(message_id)):
                event_id = result.get("event_id")
                if isinstance(event_id, str):
                    await self.ctx.messaging.set_event_id(conn, uuid.UUID(message_id), event_id)
