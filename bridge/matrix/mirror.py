"""Domain changes that must show in Matrix, turned into outbox actions (same DB transaction)."""

from __future__ import annotations

import uuid
from typing import Any

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
        elif row.action == "send" and isinstance(payload.get("message_id"), str):
            event_id = result.get("event_id")
            if isinstance(event_id, str):
                await self.ctx.messaging.set_event_id(conn, uuid.UUID(payload["message_id"]), event_id)
