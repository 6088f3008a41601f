"""All SQL of network users."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from .models import NetworkUser

_COLUMNS = "id, display_name, avatar_url, matrix_user_id, created_at, updated_at, number"


def _user(row: asyncpg.Record) -> NetworkUser:
    return NetworkUser(**dict(row))


class UserStore:
    async def insert_user(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        display_name: str,
        avatar_url: str | None = None,
        matrix_user_id: str | None = None,
    ) -> NetworkUser:
        row = await conn.fetchrow(
            f"""
            INSERT INTO network_user (id, display_name, avatar_url, matrix_user_id)
            VALUES ($1, $2, $3, $4)
            RETURNING {_COLUMNS}
            """,
            user_id,
            display_name,
            avatar_url,
            matrix_user_id,
        )
        return _user(row)

    async def get_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> NetworkUser | None:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM network_user WHERE id = $1", user_id)
        return None if row is None else _user(row)

    async def get_users(
        self, conn: asyncpg.Connection, user_ids: Sequence[uuid.UUID]
    ) -> list[NetworkUser]:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM network_user WHERE id = ANY($1::uuid[]) ORDER BY id",
            list(user_ids),
        )
        return [_user(r) for r in rows]

    async def get_by_matrix_id(
        self, conn: asyncpg.Connection, matrix_user_id: str
    ) -> NetworkUser | None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM network_user WHERE matrix_user_id = $1", matrix_user_id
        )
        return None if row is None else _user(row)

    async def get_by_matrix_ids(
        self, conn: asyncpg.Connection, matrix_user_ids: Sequence[str]
    ) -> dict[str, NetworkUser]:
        """The network identities of those Matrix users that have one, by Matrix user id."""
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM network_user WHERE matrix_user_id = ANY($1::text[])",
            list(matrix_user_ids),
        )
        return {r["matrix_user_id"]: _user(r) for r in rows}

    async def insert_matrix_user(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, matrix_user_id: str, name: str
    ) -> NetworkUser:
        """Create the network identity of a Matrix user, or return the existing one."""
        row = await conn.fetchrow(
            f"""
            WITH ins AS (
                INSERT INTO network_user (id, display_name, matrix_user_id)
                VALUES ($1, $3, $2)
                ON CONFLICT (matrix_user_id) DO NOTHING
                RETURNING {_COLUMNS}
            )
            SELECT {_COLUMNS} FROM ins
            UNION ALL
            SELECT {_COLUMNS} FROM network_user WHERE matrix_user_id = $2
            LIMIT 1
            """,
            user_id,
            matrix_user_id,
            name,
        )
        return _user(row)

    async def update_profile(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        display_name: str | None,
        avatar_url: str | None,
    ) -> NetworkUser | None:
        row = await conn.fetchrow(
            f"""
            UPDATE network_user
            SET display_name = COALESCE($2, display_name),
                avatar_url = COALESCE($3, avatar_url),
                updated_at = now()
            WHERE id = $1
            RETURNING {_COLUMNS}
            """,
            user_id,
            display_name,
            avatar_url,
        )
        return None if row is None else _user(row)

    async def list_users(
        self, conn: asyncpg.Connection, *, limit: int, offset: int = 0
    ) -> list[NetworkUser]:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM network_user ORDER BY created_at, id LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
        return [_user(r) for r in rows]

    async def search_users(
        self, conn: asyncpg.Connection, name: str, *, limit: int
    ) -> list[NetworkUser]:
        """Users whose display name contains ``name`` (case-insensitive)."""
        pattern = (
            "%" + name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        rows = await conn.fetch(
            f"""
            SELECT {_COLUMNS} FROM network_user
            WHERE lower(display_name) LIKE $1
            ORDER BY display_name, id LIMIT $2
            """,
            pattern,
            limit,
        )
        return [_user(r) for r in rows]

    async def get_by_numbers(
        self, conn: asyncpg.Connection, numbers: Sequence[int]
    ) -> dict[int, NetworkUser]:
        """The users with these numeric ids (those that exist), by number."""
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM network_user WHERE number = ANY($1::bigint[])",
            list(numbers),
        )
        return {r["number"]: _user(r) for r in rows}
