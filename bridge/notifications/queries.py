"""The SQL of the REST API's paged list of notifications (reads only).

Pages follow ``notification_user_created_idx`` (``user_id, created_at DESC, id DESC``): a first
page or a keyset position (``after``: the ``(created_at, id)`` of the last row seen) reads the
page's rows only. A deep ``OFFSET`` page past the middle of the user's list is found by walking
the index from the other end, so no page skips more than half of the list.
"""

from __future__ import annotations

import uuid

import asyncpg

from ..listing import Page, Position
from .models import Notification
from .store import _NOTIFICATION, _notification

#: From this offset on, a page past the middle of the list is found from its other end.
DEEP_OFFSET = 100


class NotificationQueries:
    async def list_notifications_page(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        oldest_first: bool,
        after: Position | None,
        limit: int,
        offset: int,
    ) -> Page[Notification]:
        """One page of the user's notifications by ``created_at`` (newest first unless
        ``oldest_first``), the total and whether more follow; ``after`` starts past a
        ``(created_at, id)`` position of that order."""
        order = "created_at, id" if oldest_first else "created_at DESC, id DESC"
        if after is None and offset >= DEEP_OFFSET:
            total = await self._count(conn, user_id)
            if offset * 2 > total:  # past the middle: walk the index from the other end
                backwards = "created_at DESC, id DESC" if oldest_first else "created_at, id"
                rows = await conn.fetch(
                    f"""
                    SELECT {_NOTIFICATION} FROM notification WHERE user_id = $1
                    ORDER BY {backwards} LIMIT $2 OFFSET $3
                    """,
                    user_id,
                    max(min(limit, total - offset), 0),
                    max(total - offset - limit, 0),
                )
                rows.reverse()
                return Page([_notification(r) for r in rows], total, offset + len(rows) < total)
            rows = await conn.fetch(
                f"""
                SELECT {_NOTIFICATION} FROM notification WHERE user_id = $1
                ORDER BY {order} LIMIT $2 OFFSET $3
                """,
                user_id,
                limit + 1,
                offset,
            )
        else:
            seek = ""
            args: list[object] = [user_id, limit + 1, offset]
            if after is not None:
                seek = f" AND (created_at, id) {'>' if oldest_first else '<'} ($4, $5)"
                args += [after[0], after[1]]
            rows = await conn.fetch(
                f"""
                SELECT {_NOTIFICATION} FROM notification WHERE user_id = $1{seek}
                ORDER BY {order} LIMIT $2 OFFSET $3
                """,
                *args,
            )
            total = await self._count(conn, user_id)
        return Page([_notification(r) for r in rows[:limit]], int(total), len(rows) > limit)

    async def _count(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
        total = await conn.fetchval("SELECT count(*) FROM notification WHERE user_id = $1", user_id)
        return int(total)
