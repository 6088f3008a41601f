"""Who may see the status page: an admin JWT, or a session opened by a one-time link.

``bridge admin-link`` stores the digest of a random secret and prints a link holding it; the
first visit uses it up and opens a session (an HttpOnly cookie, SameSite=Lax, path /admin)
with its own CSRF token, which every form posts back. An admin JWT (the REST API's ``admin``
role) works as ``Authorization: Bearer`` (no cookie, so no CSRF token needed) or once as
``?access_token=`` on the page, which is exchanged for a session the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import asyncpg

from ..config import AdminConfig
from ..db.database import Database
from .admin_store import AdminTokenStore

SESSION_COOKIE = "bridge_admin"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class AdminSession:
    secret: str
    csrf: str


class AdminAuth:
    def __init__(self, db: Database, config: AdminConfig, store: AdminTokenStore | None = None):
        self._db = db
        self._config = config
        self._store = store or AdminTokenStore()

    async def create_link_secret(self) -> str:
        """A new one-time secret for a link, valid ``admin.link_ttl`` seconds."""
        secret = secrets.token_urlsafe(32)
        async with self._db.transaction() as conn:
            await self._store.delete_expired(conn)
            await self._store.insert_token(conn, _digest(secret), "link", self._config.link_ttl)
        return secret

    async def use_link(self, secret: str) -> AdminSession | None:
        """Open a session with a link's secret; None when it is unknown, used or expired."""
        async with self._db.transaction() as conn:
            if not await self._store.consume_link(conn, _digest(secret)):
                return None
            return await self._open(conn)

    async def open_session(self) -> AdminSession:
        """A session for a caller already proven admin (by JWT)."""
        async with self._db.transaction() as conn:
            return await self._open(conn)

    async def _open(self, conn: asyncpg.Connection) -> AdminSession:
        session = AdminSession(secrets.token_urlsafe(32), secrets.token_urlsafe(24))
        await self._store.insert_token(
            conn,
            _digest(session.secret),
            "session",
            self._config.session_ttl,
            session.csrf,
        )
        return session

    async def session_csrf(self, secret: str) -> str | None:
        async with self._db.acquire() as conn:
            return await self._store.get_session_csrf(conn, _digest(secret))

    async def close_session(self, secret: str) -> None:
        async with self._db.transaction() as conn:
            await self._store.delete_token(conn, _digest(secret))


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
