"""All SQL of waiting invites: ghosts invited to Matrix group rooms that cannot join yet."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_COLUMNS = "room_id, user_id, inviter_id, inviter, invited_at"


@dataclass(frozen=True, slots=True)
class WaitingInvite:
    """``user_id``'s ghost, invited to ``room_id`` by the Matrix user ``inviter``
    (network id ``inviter_id``), has not joined yet."""

    room_id: str
    user_id: uuid.UUID
    inviter_id: uuid.UUID
    inviter: str
    invited_at: datetime


class WaitingInviteStore:
    async def upsert_invite(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        user_id: uuid.UUID,
        inviter_id: uuid.UUID,
        inviter: str,
    ) -> None:
        """Record (or re-record, by the latest inviter) a ghost's waiting invite."""
        await conn.execute(
            """
            INSERT INTO waiting_invite (room_id, user_id, inviter_id, inviter)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (room_id, user_id)
            DO UPDATE SET inviter_id = EXCLUDED.inviter_id, inviter = EXCLUDED.inviter
            """,
            room_id,
            user_id,
            inviter_id,
            inviter,
        )

    async def list_in_room(
        self, conn: asyncpg.Connection, room_id: str, inviter_id: uuid.UUID
    ) -> list[WaitingInvite]:
        """The room's waiting invites by one inviter, oldest first (rows locked)."""
        rows = await conn.fetch(
            f"""
            SELECT {_COLUMNS} FROM waiting_invite
            WHERE room_id = $1 AND inviter_id = $2
            ORDER BY invited_at, user_id
            FOR UPDATE
            """,
            room_id,
            inviter_id,
        )
        return [WaitingInvite(**dict(r)) for r in rows]

    async def list_for_pair(
        self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID
    ) -> list[WaitingInvite]:
        """Waiting invites where one of the two invited the other, oldest first."""
        rows = await conn.fetch(
            f"""
            SELECT {_COLUMNS} FROM waiting_invite
            WHERE (inviter_id = $1 AND user_id = $2) OR (inviter_id = $2 AND user_id = $1)
            ORDER BY invited_at, room_id
            FOR UPDATE
            """,
            a,
            b,
        )
        return [WaitingInvite(**dict(r)) for r in rows]

    async def delete_invites(
        self, conn: asyncpg.Connection, room_id: str, user_ids: Sequence[uuid.UUID]
    ) -> int:
        """Forget the room's waiting invites of ``user_ids``; how many there were."""
        result: str = await conn.execute(
            "DELETE FROM waiting_invite WHERE room_id = $1 AND user_id = ANY($2::uuid[])",
            room_id,
            list(user_ids),
        )
        return int(result.split()[-1])
