"""All SQL of notifications and devices."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from .models import Device, Notification

_NOTIFICATION = "id, user_id, kind, title, body, payload, created_at, seen_at"


def _notification(row: asyncpg.Record) -> Notification:
    data = dict(row)
    if isinstance(data["payload"], str):
        data["payload"] = json.loads(data["payload"])
    return Notification(**data)


def _uuid_array(ids: Iterable[uuid.UUID]) -> str:
    """A Postgres array literal of uuids: one text parameter instead of an array of many."""
    return "{" + ",".join(map(str, ids)) + "}"


def group_arrays(groups: Sequence[Sequence[Notification]]) -> list[Any]:
    """The 7 arrays of ``insert_notifications``'s ``unnest``, one entry per (non-empty) group
    (also the one-statement post's)."""
    groups = [g for g in groups if g]
    return [
        [_uuid_array(n.id for n in g) for g in groups],
        [_uuid_array(n.user_id for n in g) for g in groups],
        [g[0].kind for g in groups],
        [g[0].title for g in groups],
        [g[0].body for g in groups],
        [json.dumps(g[0].payload, separators=(",", ":")) for g in groups],
        [g[0].created_at for g in groups],
    ]


class NotificationStore:
    async def insert_notifications(
        self, conn: asyncpg.Connection, groups: Sequence[Sequence[Notification]]
    ) -> None:
        """Insert notifications in one statement. Each group shares its kind, title, body,
        payload and time (one notice to several users), which are sent once per group."""
        await conn.execute(
            """
            WITH g AS MATERIALIZED (
                SELECT g.ids::uuid[] AS ids, g.users::uuid[] AS users, g.kind, g.title, g.body,
                       g.payload::jsonb AS payload, g.created_at
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                            $6::text[], $7::timestamptz[])
                     AS g(ids, users, kind, title, body, payload, created_at)
            )
            INSERT INTO notification (id, user_id, kind, title, body, payload, created_at)
            SELECT n.id, n.user_id, g.kind, g.title, g.body, g.payload, g.created_at
            FROM g CROSS JOIN LATERAL unnest(g.ids, g.users) AS n(id, user_id)
            """,
            *group_arrays(groups),
        )

    async def list_notifications(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        limit: int,
        offset: int = 0,
        unseen_only: bool = False,
    ) -> list[Notification]:
        rows = await conn.fetch(
            f"""
            SELECT {_NOTIFICATION} FROM notification
            WHERE user_id = $1 AND (NOT $4 OR seen_at IS NULL)
            ORDER BY created_at DESC, id DESC
            LIMIT $2 OFFSET $3
            """,
            user_id,
            limit,
            offset,
            unseen_only,
        )
        return [_notification(r) for r in rows]

    async def mark_seen(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None
    ) -> int:
        """Mark the user's notifications (all, or those in ``ids``) seen; return how many."""
        status = await conn.execute(
            """
            UPDATE notification SET seen_at = now()
            WHERE user_id = $1 AND seen_at IS NULL AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))
            """,
            user_id,
            None if ids is None else list(ids),
        )
        return int(status.split()[-1])

    async def upsert_device(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, token: str, platform: str
    ) -> Device:
        row = await conn.fetchrow(
            """
            INSERT INTO device (id, user_id, token, platform) VALUES (gen_random_uuid(), $1, $2, $3)
            ON CONFLICT (user_id, token) DO UPDATE SET platform = EXCLUDED.platform
            RETURNING id, user_id, token, platform, created_at
            """,
            user_id,
            token,
            platform,
        )
        return Device(**dict(row))

    # --- REST API: devices by id ----------------------------------------------------------------

    async def delete_device_by_id(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, device_id: uuid.UUID
    ) -> Device | None:
        """Remove one of the user's devices; None if they have no such device."""
        row = await conn.fetchrow(
            """
            DELETE FROM device WHERE id = $1 AND user_id = $2
            RETURNING id, user_id, token, platform, created_at
            """,
            device_id,
            user_id,
        )
        return None if row is None else Device(**dict(row))
