"""Network users: created by operators, by the REST API's first call, or for Matrix users.

Transactions (the same pattern in every service): a public method that takes ``conn`` runs in
the caller's DB transaction (an inbox worker's, so an event's effects and its "processed" mark
commit together, or another service's); a public method without ``conn`` is an entry point that
takes its own connection from the pool and, when it writes, opens the transaction itself (REST
handlers, commands).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from ..db.database import Database
from ..errors import BadRequest, NotFound
from ..ids import clean_text
from .cache import UserCache
from .models import NetworkUser
from .store import UserStore

MAX_NAME = 255


def _name(value: str) -> str:
    name = clean_text(value, limit=MAX_NAME, multiline=False).strip()
    if not name:
        raise BadRequest("a display name is required")
    return name


def _avatar(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("mxc://", "https://")):
        raise BadRequest("avatar must be an mxc:// or https:// URL")
    return clean_text(value, limit=1024, multiline=False)


class UserService:
    def __init__(self, db: Database, store: UserStore, cache: UserCache | None = None) -> None:
        self._db = db
        self._store = store
        #: Token users known to exist under their stored names (see :mod:`.cache`).
        self.cache = cache or UserCache()

    # --- entry points (own connection and transaction) ------------------------------------------

    async def sign_in(
        self, user_id: uuid.UUID, display_name: str | None, *, acting: uuid.UUID | None = None
    ) -> None:
        """Make sure the token subject ``user_id`` exists, named as its claims say (created or
        renamed); 404 when ``acting`` (the user an administrator acts for) is not a network user.

        The usual path makes no database round trip: the user is in :attr:`cache` under the
        name the token carries. Otherwise one read (no transaction), and a first use or a
        rename is one statement; a concurrent first request of the same user is read again.
        """
        if acting is None or acting == user_id:
            known = self.cache.name(user_id)
            if known is not None and (display_name is None or display_name == known):
                return
        for attempt in (1, 2):
            since = self.cache.generation
            try:
                async with self._db.acquire() as conn:
                    user = await self.ensure(conn, user_id, display_name)
                    if acting is not None and acting != user_id:
                        await self._require_acting(conn, acting)
                # Committed (no transaction here): what the database now holds.
                self.cache.remember(user.id, user.display_name, since=since)
                return
            except asyncpg.UniqueViolationError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def require_acting(self, acting: uuid.UUID) -> None:
        """404 when ``acting`` (the user an administrator acts for, ``asUserId``) is not a
        network user."""
        async with self._db.acquire() as conn:
            await self._require_acting(conn, acting)

    async def _require_acting(self, conn: asyncpg.Connection, acting: uuid.UUID) -> None:
        if await self._store.get_user(conn, acting) is None:
            raise NotFound(f"no network user {acting} (asUserId)")

    async def add(self, display_name: str, avatar_url: str | None = None) -> NetworkUser:
        """Create a network-native user (an operator's command)."""
        async with self._db.transaction() as conn:
            return await self.create(conn, display_name, avatar_url)

    async def list_page(self, *, limit: int = 100, offset: int = 0) -> list[NetworkUser]:
        """Network users, oldest first."""
        async with self._db.acquire() as conn:
            return await self.list_users(conn, limit=limit, offset=offset)

    # --- in the caller's transaction ------------------------------------------------------------

    async def create(
        self,
        conn: asyncpg.Connection,
        display_name: str,
        avatar_url: str | None = None,
        *,
        user_id: uuid.UUID | None = None,
    ) -> NetworkUser:
        """Create a network-native user."""
        return await self._store.insert_user(
            conn, user_id or uuid.uuid4(), _name(display_name), _avatar(avatar_url)
        )

    async def get(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> NetworkUser:
        user = await self._store.get_user(conn, user_id)
        if user is None:
            raise NotFound(f"no network user {user_id}")
        return user

    async def find(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> NetworkUser | None:
        return await self._store.get_user(conn, user_id)

    async def for_matrix_user(
        self, conn: asyncpg.Connection, matrix_user_id: str, display_name: str | None = None
    ) -> NetworkUser:
        """The network identity linked to a Matrix user, created on first use."""
        existing = await self._store.get_by_matrix_id(conn, matrix_user_id)
        if existing is not None:
            return existing
        name = display_name or matrix_user_id[1:].split(":", 1)[0]
        return await self._store.insert_matrix_user(conn, uuid.uuid4(), matrix_user_id, _name(name))

    async def get_many(
        self, conn: asyncpg.Connection, user_ids: Sequence[uuid.UUID]
    ) -> list[NetworkUser]:
        return await self._store.get_users(conn, user_ids)

    async def find_matrix_user(
        self, conn: asyncpg.Connection, matrix_user_id: str
    ) -> NetworkUser | None:
        return await self._store.get_by_matrix_id(conn, matrix_user_id)

    async def find_matrix_users(
        self, conn: asyncpg.Connection, matrix_user_ids: Sequence[str]
    ) -> dict[str, NetworkUser]:
        return await self._store.get_by_matrix_ids(conn, matrix_user_ids)

    async def ensure(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, display_name: str | None
    ) -> NetworkUser:
        """The user ``user_id`` (a token's subject), created or renamed to match its claims."""
        user = await self._store.get_user(conn, user_id)
        if user is None:
            return await self._store.insert_user(conn, user_id, _name(display_name or str(user_id)))
        if display_name and _name(display_name) != user.display_name:
            # Dropped at once here (the caller's transaction may still roll back; the
            # trigger's notification tells the other processes when it commits).
            self.cache.changed(str(user_id))
            updated = await self._store.update_profile(conn, user_id, _name(display_name), None)
            assert updated is not None
            return updated
        return user

    async def list_users(
        self, conn: asyncpg.Connection, *, limit: int = 100, offset: int = 0
    ) -> list[NetworkUser]:
        return await self._store.list_users(conn, limit=limit, offset=offset)

    async def search(
        self, conn: asyncpg.Connection, name: str, *, limit: int = 20
    ) -> list[NetworkUser]:
        return await self._store.search_users(conn, name, limit=limit)

    async def require_all(self, conn: asyncpg.Connection, user_ids: Sequence[uuid.UUID]) -> None:
        """404 naming the first of ``user_ids`` that is not a network user."""
        wanted = list(dict.fromkeys(user_ids))
        found = {u.id for u in await self._store.get_users(conn, wanted)}
        for user_id in wanted:
            if user_id not in found:
                raise NotFound(f"no network user {user_id}")

    async def by_numbers(
        self, conn: asyncpg.Connection, numbers: Sequence[int]
    ) -> dict[int, NetworkUser]:
        """The users with these numeric ids (those that exist), by number."""
        return await self._store.get_by_numbers(conn, numbers)

    async def by_number(self, conn: asyncpg.Connection, number: int) -> NetworkUser:
        """The user with this numeric id, or 404 naming it."""
        found = await self._store.get_by_numbers(conn, [number])
        if number not in found:
            raise NotFound(f"no network user {number}")
        return found[number]
