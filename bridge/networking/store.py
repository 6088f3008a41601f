"""All SQL of networking: connection requests and connections."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from .models import Connection, ConnectionRequest, RequestFilter, RequestStatus

_REQUEST = """
    id, sender_id, receiver_id, status, message, first_requested_at, sent_at, request_counter,
    responded_at, room_id, deleted_at
"""
_CONNECTION = "id, user_low, user_high, connected_since"


def _request(row: asyncpg.Record) -> ConnectionRequest:
    data = dict(row)
    data["status"] = RequestStatus(data["status"])
    return ConnectionRequest(**data)


def _pair(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    return (a, b) if a < b else (b, a)


class NetworkingStore:
    async def upsert_pending_request(
        self,
        conn: asyncpg.Connection,
        request_id: uuid.UUID,
        sender_id: uuid.UUID,
        receiver_id: uuid.UUID,
        message: str | None,
        room_id: str | None,
    ) -> tuple[ConnectionRequest, bool]:
        """Insert a pending request; if the pair has one already, raise its counter.

        Returns (request, created).
        """
        row = await conn.fetchrow(
            f"""
            INSERT INTO connection_request (id, sender_id, receiver_id, status, message, room_id)
            VALUES ($1, $2, $3, 'pending', $4, $5)
            ON CONFLICT (LEAST(sender_id, receiver_id), GREATEST(sender_id, receiver_id))
                WHERE status = 'pending'
            DO UPDATE SET request_counter = connection_request.request_counter + 1,
                          sent_at = now(),
                          message = COALESCE(EXCLUDED.message, connection_request.message),
                          room_id = COALESCE(connection_request.room_id, EXCLUDED.room_id)
            RETURNING {_REQUEST}, (xmax = 0) AS created
            """,
            request_id,
            sender_id,
            receiver_id,
            message,
            room_id,
        )
        data = dict(row)
        created = bool(data.pop("created"))
        data["status"] = RequestStatus(data["status"])
        return ConnectionRequest(**data), created

    async def get_request(
        self, conn: asyncpg.Connection, request_id: uuid.UUID, *, for_update: bool = False
    ) -> ConnectionRequest | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await conn.fetchrow(
            f"SELECT {_REQUEST} FROM connection_request WHERE id = $1{lock}", request_id
        )
        return None if row is None else _request(row)

    async def get_pending_between(
        self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID
    ) -> ConnectionRequest | None:
        row = await conn.fetchrow(
            f"""
            SELECT {_REQUEST} FROM connection_request
            WHERE LEAST(sender_id, receiver_id) = $1 AND GREATEST(sender_id, receiver_id) = $2
              AND status = 'pending'
            """,
            *_pair(a, b),
        )
        return None if row is None else _request(row)

    async def get_request_by_room(
        self, conn: asyncpg.Connection, room_id: str
    ) -> ConnectionRequest | None:
        row = await conn.fetchrow(
            f"""
            SELECT {_REQUEST} FROM connection_request WHERE room_id = $1
            ORDER BY sent_at DESC LIMIT 1
            """,
            room_id,
        )
        return None if row is None else _request(row)

    async def set_request_room(
        self, conn: asyncpg.Connection, request_id: uuid.UUID, room_id: str
    ) -> None:
        await conn.execute(
            "UPDATE connection_request SET room_id = $2 WHERE id = $1 AND room_id IS NULL",
            request_id,
            room_id,
        )

    async def set_request_status(
        self,
        conn: asyncpg.Connection,
        request_id: uuid.UUID,
        status: RequestStatus,
        *,
        delete: bool = False,
    ) -> ConnectionRequest | None:
        """Move a pending request to ``status`` (``delete``: and soft-delete it); None if it
        was no longer pending."""
        row = await conn.fetchrow(
            f"""
            UPDATE connection_request SET status = $2, responded_at = now(),
                deleted_at = CASE WHEN $3 THEN now() END
            WHERE id = $1 AND status = 'pending'
            RETURNING {_REQUEST}
            """,
            request_id,
            status.value,
            delete,
        )
        return None if row is None else _request(row)

    async def list_requests(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        incoming: bool | None,
        status: RequestStatus | None,
        limit: int,
        offset: int = 0,
    ) -> list[ConnectionRequest]:
        rows = await conn.fetch(
            f"""
            SELECT {_REQUEST} FROM connection_request
            WHERE (($2::bool IS NULL AND (sender_id = $1 OR receiver_id = $1))
                   OR ($2 AND receiver_id = $1) OR (NOT $2 AND sender_id = $1))
              AND ($3::text IS NULL OR status = $3)
            ORDER BY sent_at DESC, id
            LIMIT $4 OFFSET $5
            """,
            user_id,
            incoming,
            None if status is None else status.value,
            limit,
            offset,
        )
        return [_request(r) for r in rows]

    async def insert_connection(
        self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID
    ) -> Connection:
        low, high = _pair(a, b)
        row = await conn.fetchrow(
            f"""
            WITH ins AS (
                INSERT INTO connection (id, user_low, user_high) VALUES (gen_random_uuid(), $1, $2)
                ON CONFLICT (user_low, user_high) DO NOTHING
                RETURNING {_CONNECTION}
            )
            SELECT {_CONNECTION} FROM ins
            UNION ALL
            SELECT {_CONNECTION} FROM connection WHERE user_low = $1 AND user_high = $2
            LIMIT 1
            """,
            low,
            high,
        )
        return Connection(**dict(row))

    async def get_connection(
        self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID
    ) -> Connection | None:
        row = await conn.fetchrow(
            f"SELECT {_CONNECTION} FROM connection WHERE user_low = $1 AND user_high = $2",
            *_pair(a, b),
        )
        return None if row is None else Connection(**dict(row))

    async def list_connected(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, others: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Those of ``others`` connected to ``user_id`` (one statement)."""
        rows = await conn.fetch(
            """
            SELECT CASE WHEN user_low = $1 THEN user_high ELSE user_low END AS other
            FROM connection
            WHERE (user_low = $1 AND user_high = ANY($2::uuid[]))
               OR (user_high = $1 AND user_low = ANY($2::uuid[]))
            """,
            user_id,
            list(others),
        )
        return {row["other"] for row in rows}

    async def delete_connection(
        self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID
    ) -> Connection | None:
        row = await conn.fetchrow(
            f"""
            DELETE FROM connection WHERE user_low = $1 AND user_high = $2
            RETURNING {_CONNECTION}
            """,
            *_pair(a, b),
        )
        return None if row is None else Connection(**dict(row))

    async def list_connections(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, limit: int, offset: int = 0
    ) -> list[Connection]:
        rows = await conn.fetch(
            f"""
            SELECT {_CONNECTION} FROM connection WHERE user_low = $1 OR user_high = $1
            ORDER BY connected_since DESC, id LIMIT $2 OFFSET $3
            """,
            user_id,
            limit,
            offset,
        )
        return [Connection(**dict(r)) for r in rows]

    # --- REST API: lookups by id, filtered pages, per-pair relations ----------------------------

    async def get_connection_by_id(
        self, conn: asyncpg.Connection, connection_id: uuid.UUID
    ) -> Connection | None:
        row = await conn.fetchrow(
            f"SELECT {_CONNECTION} FROM connection WHERE id = $1", connection_id
        )
        return None if row is None else Connection(**dict(row))

    async def list_requests_page(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        filters: RequestFilter,
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[ConnectionRequest], int]:
        """Requests the user sent or received that ``filters`` keeps, newest first, and the
        total."""
        where = """
            FROM connection_request
            WHERE (sender_id = $1 OR receiver_id = $1)
              AND ($2::text[] IS NULL OR status = ANY($2::text[]))
        """
        statuses = filters.statuses
        args = (user_id, None if statuses is None else [s.value for s in statuses])
        rows = await conn.fetch(
            f"SELECT {_REQUEST} {where} ORDER BY sent_at DESC, id LIMIT $3 OFFSET $4",
            *args,
            limit,
            offset,
        )
        total = await conn.fetchval(f"SELECT count(*) {where}", *args)
        return [_request(r) for r in rows], int(total)

    async def count_connections(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM connection WHERE user_low = $1 OR user_high = $1", user_id
            )
        )

    async def list_relations(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        other_ids: Sequence[uuid.UUID] | None,
    ) -> list[tuple[uuid.UUID, ConnectionRequest | None, Connection | None]]:
        """Per other user: the latest request between the two and their connection, if any.

        Restricted to ``other_ids`` when given; ordered by the other user's id.
        """
        rows = await conn.fetch(
            """
            WITH latest AS (
                SELECT DISTINCT ON (other_id) *
                FROM (SELECT CASE WHEN sender_id = $1 THEN receiver_id ELSE sender_id END
                                 AS other_id, r.*
                      FROM connection_request r
                      WHERE sender_id = $1 OR receiver_id = $1) x
                ORDER BY other_id, sent_at DESC, id DESC
            ), conns AS (
                SELECT CASE WHEN user_low = $1 THEN user_high ELSE user_low END AS other_id, c.*
                FROM connection c WHERE user_low = $1 OR user_high = $1
            )
            SELECT COALESCE(l.other_id, c.other_id) AS other_id,
                   l.id AS r_id, l.sender_id, l.receiver_id, l.status, l.message,
                   l.first_requested_at, l.sent_at, l.request_counter, l.responded_at,
                   l.room_id, l.deleted_at, c.id AS c_id, c.user_low, c.user_high, c.connected_since
            FROM latest l FULL JOIN conns c ON c.other_id = l.other_id
            WHERE $2::uuid[] IS NULL OR COALESCE(l.other_id, c.other_id) = ANY($2::uuid[])
            ORDER BY 1
            """,
            user_id,
            None if other_ids is None else list(other_ids),
        )
        relations: list[tuple[uuid.UUID, ConnectionRequest | None, Connection | None]] = []
        for row in rows:
            request = None
            if row["r_id"] is not None:
                request = ConnectionRequest(
                    id=row["r_id"],
                    sender_id=row["sender_id"],
                    receiver_id=row["receiver_id"],
                    status=RequestStatus(row["status"]),
                    message=row["message"],
                    first_requested_at=row["first_requested_at"],
                    sent_at=row["sent_at"],
                    request_counter=row["request_counter"],
                    responded_at=row["responded_at"],
                    room_id=row["room_id"],
                    deleted_at=row["deleted_at"],
                )
            connection = None
            if row["c_id"] is not None:
                connection = Connection(
                    id=row["c_id"],
                    user_low=row["user_low"],
                    user_high=row["user_high"],
                    connected_since=row["connected_since"],
                )
            relations.append((row["other_id"], request, connection))
        return relations
