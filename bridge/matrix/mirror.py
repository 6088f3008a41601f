"""Domain changes that must show in Matrix, turned into outbox actions (same DB transaction)."""

from __future__ import annotations

import asyncpg

from ..messaging.models import Origin
from ..networking.models import Connection, ConnectionRequest, RequestStatus
from .handlers.context import HandlerContext


class NetworkingMirror:
    """Answers to connection requests made from a Matrix direct room show in that room."""

    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx

    async def request_sent(
        self, conn: asyncpg.Connection, request: ConnectionRequest, created: bool
    ) -> None:
        return None

    async def request_answered(self, conn: asyncpg.Connection, request: ConnectionRequest) -> None:
        if request.room_id is None:
            return
        ghost = self.ctx.ids.ghost(request.receiver_id)
        if request.status is RequestStatus.ACCEPTED:
            conversation, _ = await self.ctx.messaging.open_direct(
                conn, request.sender_id, request.receiver_id, origin=Origin.NETWORK
            )
            if await self.ctx.portals.insert_portal(conn, request.room_id, conversation.id, None):
                await self.ctx.act(conn, request.room_id, ghost, "join")
            return
        reason = {
            RequestStatus.REJECTED: "The connection request was declined.",
            RequestStatus.CANCELLED: "The connection request was withdrawn.",
        }.get(request.status)
        if reason:
            await self.ctx.act(conn, request.room_id, ghost, "leave", reason=reason)

    async def disconnected(self, conn: asyncpg.Connection, connection: Connection) -> None:
        return None
