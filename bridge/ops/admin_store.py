"""All SQL of admin access: one-time links and the sessions they open (by secret digest)."""

from __future__ import annotations

import asyncpg


class AdminTokenStore:
    async def insert_token(
        self,
        conn: asyncpg.Connection,
        digest: bytes,
        kind: str,
        ttl: float,
        csrf: str | None = None,
    ) -> None:
        await conn.execute(
            """
            INSERT INTO admin_token (token_sha256, kind, csrf, expires_at)
            VALUES ($1, $2, $3, now() + make_interval(secs => $4))
            """,
            digest,
            kind,
            csrf,
            ttl,
        )

    async def consume_link(self, conn: asyncpg.Connection, digest: bytes) -> bool:
        """Use a one-time link: True once, if it exists and has not expired."""
        status = await conn.execute(
            """
            UPDATE admin_token SET used_at = now()
            WHERE token_sha256 = $1 AND kind = 'link' AND used_at IS NULL AND expires_at > now()
            """,
            digest,
        )
        return bool(status == "UPDATE 1")

    async def get_session_csrf(self, conn: asyncpg.Connection, digest: bytes) -> str | None:
        """The CSRF token of a live session, None when there is no such session."""
        value = await conn.fetchval(
            "SELECT csrf FROM admin_token"
            " WHERE token_sha256 = $1 AND kind = 'session' AND expires_at > now()",
            digest,
        )
        return None if value is None else str(value)

    async def delete_token(self, conn: asyncpg.Connection, digest: bytes) -> None:
        await conn.execute("DELETE FROM admin_token WHERE token_sha256 = $1", digest)

    async def delete_expired(self, conn: asyncpg.Connection) -> int:
        status = await conn.execute("DELETE FROM admin_token WHERE expires_at < now()")
        return int(status.split()[-1])
