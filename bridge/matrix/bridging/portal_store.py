"""All SQL of the Matrix-side mapping: ghosts, portals, management rooms."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_INSERT_PORTAL = """
WITH ins AS (
    INSERT INTO portal (room_id, conversation_id, alias) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING
    RETURNING room_id
)
SELECT room_id FROM ins
UNION ALL
SELECT room_id FROM portal WHERE conversation_id = $2
LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class Portal:
    room_id: str
    conversation_id: uuid.UUID
    alias: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Ghost:
    user_id: str
    network_user_id: uuid.UUID
    displayname: str | None
    avatar_url: str | None
    registered_at: datetime | None


@dataclass(frozen=True, slots=True)
class RoomRole:
    """What a room is to the bridge: a portal (its conversation), a management room (its
    owner), or neither."""

    conversation_id: uuid.UUID | None
    management_of: str | None


class PortalStore:
    async def room_roles(
        self, conn: asyncpg.Connection, room_ids: Sequence[str]
    ) -> dict[str, RoomRole]:
        """Each room's role, in one query; rooms that are neither are left out."""
        rows = await conn.fetch(
            """
            SELECT r.room_id, p.conversation_id, mr.user_id AS management_of
            FROM unnest($1::text[]) AS r(room_id)
                 LEFT JOIN portal p ON p.room_id = r.room_id
                 LEFT JOIN management_room mr ON mr.room_id = r.room_id
            WHERE p.room_id IS NOT NULL OR mr.room_id IS NOT NULL
            """,
            list(room_ids),
        )
        return {r["room_id"]: RoomRole(r["conversation_id"], r["management_of"]) for r in rows}

    async def get_portal_by_room(self, conn: asyncpg.Connection, room_id: str) -> Portal | None:
        row = await conn.fetchrow(
            "SELECT room_id, conversation_id, alias, created_at FROM portal WHERE room_id = $1",
            room_id,
        )
        return None if row is None else Portal(**dict(row))

    async def get_portal_by_conversation(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID
    ) -> Portal | None:
        row = await conn.fetchrow(
            """
            SELECT room_id, conversation_id, alias, created_at FROM portal
            WHERE conversation_id = $1
            """,
            conversation_id,
        )
        return None if row is None else Portal(**dict(row))

    async def claim_portal(
        self,
        conn: asyncpg.Connection,
        room_id: str,
        conversation_id: uuid.UUID,
        alias: str | None,
    ) -> str | None:
        """Record a room the bridge made as a conversation's portal; return the conversation's
        portal room id.

        That is ``room_id``, or the room already recorded for the conversation (by a concurrent
        creator), or None if ``room_id`` or ``alias`` belongs to another conversation.
        """
        value = await conn.fetchval(_INSERT_PORTAL, room_id, conversation_id, alias)
        if value is None:
            # A concurrent creator committed while the insert waited on it, after the
            # statement's snapshot was taken: a new statement sees its row.
            value = await conn.fetchval(
                "SELECT room_id FROM portal WHERE conversation_id = $1", conversation_id
            )
        return None if value is None else str(value)

    async def insert_portal(
        self, conn: asyncpg.Connection, room_id: str, conversation_id: uuid.UUID, alias: str | None
    ) -> bool:
        """Record a portal; False if the room or the conversation has one already."""
        status = await conn.execute(
            """
            INSERT INTO portal (room_id, conversation_id, alias) VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING
            """,
            room_id,
            conversation_id,
            alias,
        )
        return bool(status == "INSERT 0 1")

    async def get_ghost(self, conn: asyncpg.Connection, user_id: str) -> Ghost | None:
        row = await conn.fetchrow(
            """
            SELECT user_id, network_user_id, displayname, avatar_url, registered_at
            FROM ghost WHERE user_id = $1
            """,
            user_id,
        )
        return None if row is None else Ghost(**dict(row))

    async def upsert_ghost(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        network_user_id: uuid.UUID,
        displayname: str | None,
        avatar_url: str | None,
        *,
        registered: bool,
    ) -> None:
        await conn.execute(
            """
            INSERT INTO ghost (user_id, network_user_id, displayname, avatar_url, registered_at,
                               profile_synced_at)
            VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END, now())
            ON CONFLICT (user_id) DO UPDATE
            SET displayname = EXCLUDED.displayname, avatar_url = EXCLUDED.avatar_url,
                registered_at = COALESCE(ghost.registered_at, EXCLUDED.registered_at),
                profile_synced_at = now()
            """,
            user_id,
            network_user_id,
            displayname,
            avatar_url,
            registered,
        )

    async def get_management_room(self, conn: asyncpg.Connection, user_id: str) -> str | None:
        value = await conn.fetchval(
            "SELECT room_id FROM management_room WHERE user_id = $1", user_id
        )
        return None if value is None else str(value)

    async def is_management_room(self, conn: asyncpg.Connection, room_id: str) -> str | None:
        """The user whose management room this is, or None."""
        value = await conn.fetchval(
            "SELECT user_id FROM management_room WHERE room_id = $1", room_id
        )
        return None if value is None else str(value)

    async def set_management_room(
        self, conn: asyncpg.Connection, user_id: str, room_id: str
    ) -> None:
        await conn.execute(
            """
            INSERT INTO management_room (user_id, room_id) VALUES ($1, $2)
            ON CONFLICT (user_id) DO UPDATE SET room_id = EXCLUDED.room_id, created_at = now()
            """,
            user_id,
            room_id,
        )
