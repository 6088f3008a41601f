"""What every Matrix event handler works with, and the small helpers they share."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from ...config import Config
from ...messaging.service import MessagingService
from ...networking.service import NetworkingService
from ...notifications.service import NotificationService
from ...users.models import NetworkUser
from ...users.service import UserService
from ..ids import MatrixIds
from .portal_store import PortalStore

log = logging.getLogger(__name__)


class Outbox(Protocol):
    async def enqueue(
        self, conn: asyncpg.Connection, lane: str, sender: str, action: str, payload: dict[str, Any]
    ) -> int: ...


@dataclass(frozen=True)
class HandlerContext:
    config: Config
    ids: MatrixIds
    portals: PortalStore
    outbox: Outbox
    users: UserService
    messaging: MessagingService
    networking: NetworkingService
    notifications: NotificationService

    def allowed(self, user_id: str) -> bool:
        return self.config.permission_level(user_id) in ("user", "admin")

    def is_admin(self, user_id: str) -> bool:
        """A bridge administrator (``bridge.permissions``): exempt from the connection gate."""
        return self.config.permission_level(user_id) == "admin"

    async def notice(self, conn: asyncpg.Connection, room_id: str, text: str) -> None:
        """An m.notice from the bot (through the outbox, in the caller's transaction)."""
        await self.send(conn, room_id, self.ids.bot, {"msgtype": "m.notice", "body": text})

    async def tell(
        self, conn: asyncpg.Connection, user_id: str, text: str, *, open_with: str | None = None
    ) -> None:
        """A notice to a Matrix user in their management room.

        If they have none: with ``open_with``, the bot opens one (a direct room, created through
        the outbox) whose first notice is ``open_with``; without it, nothing is sent.
        """
        room_id = await self.portals.get_management_room(conn, user_id)
        if room_id is not None:
            await self.notice(conn, room_id, text)
        elif open_with is not None:
            await self.outbox.enqueue(
                conn,
                f"management:{user_id}",
                self.ids.bot,
                "create_room",
                {
                    "management_for": user_id,
                    "invite": [user_id],
                    "is_direct": True,
                    "name": "Network bridge",
                    "initial_notice": open_with,
                },
            )

    async def send(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        sender: str,
        content: dict[str, Any],
        event_type: str = "m.room.message",
    ) -> int:
        return await self.outbox.enqueue(
            conn,
            room_id,
            sender,
            "send",
            {"room_id": room_id, "event_type": event_type, "content": content},
        )

    async def act(
        self, conn: asyncpg.Connection, room_id: str, sender: str, action: str, **payload: Any
    ) -> int:
        return await self.outbox.enqueue(
            conn, room_id, sender, action, {"room_id": room_id, **payload}
        )

    async def matrix_user(
        self, conn: asyncpg.Connection, user_id: str, displayname: str | None = None
    ) -> NetworkUser:
        """The network identity of a Matrix user, created on first use."""
        return await self.users.for_matrix_user(conn, user_id, displayname)

    async def participant_of(self, conn: asyncpg.Connection, user_id: str) -> uuid.UUID | None:
        """The network id of a Matrix user or ghost, if it has one (without creating it)."""
        ghost = self.ids.network_user_of(user_id)
        if ghost is not None:
            return ghost
        user = await self.users.find_matrix_user(conn, user_id)
        return None if user is None else user.id
