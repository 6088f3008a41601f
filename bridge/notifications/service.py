"""Notifications for network users; delivered to Matrix-linked users by a listener.

Transactions, as in every service: a method that takes ``conn`` runs in the caller's DB
transaction; a method without ``conn`` is an entry point that takes its own connection and, when
it writes, opens the transaction itself (see :mod:`bridge.users.service`).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from ..db.database import Database
from ..errors import BadRequest, NotFound
from ..ids import clean_text
from ..listing import Page, Window
from ..users.service import UserService
from ..uuid7 import uuid7
from .models import Device, Notification
from .queries import NotificationQueries
from .store import NotificationStore

#: The kind of a notification an administrator sends without naming one.
ANNOUNCEMENT = "announcement"


@dataclass(frozen=True, slots=True)
class Notify:
    """A request to notify ``user_ids`` (each once) of one thing."""

    user_ids: tuple[uuid.UUID, ...]
    kind: str
    title: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)


class NotificationListener(Protocol):
    async def notified(self, conn: asyncpg.Connection, notifications: list[Notification]) -> None:
        """Called in the DB transaction that created the notifications."""


MAX_TITLE = 255
MAX_BODY = 2000


def clean_title(title: str) -> str:
    """The title as stored: control and other invisible characters removed, trimmed; 400 when
    nothing is left (checked after cleaning, so a title of such characters alone is refused)."""
    cleaned = clean_text(title, limit=MAX_TITLE, multiline=False).strip()
    if not cleaned:
        raise BadRequest("notification.title must contain visible characters")
    return cleaned


class NotificationService:
    def __init__(
        self,
        db: Database,
        store: NotificationStore,
        users: UserService,
        queries: NotificationQueries | None = None,
    ) -> None:
        self._db = db
        self._users = users
        self._queries = queries or NotificationQueries()
        self._store = store
        self._listeners: list[NotificationListener] = []

    def add_listener(self, listener: NotificationListener) -> None:
        self._listeners.append(listener)

    # --- entry points (own connection and transaction) ------------------------------------------

    async def send(
        self,
        user_ids: Sequence[uuid.UUID],
        *,
        kind: str | None,
        title: str,
        body: str,
        payload: dict[str, Any] | None = None,
    ) -> builtins.list[Notification]:
        """Notify network users (an administrator's act); 404 naming a user who does not exist,
        400 for no recipients or a title with nothing visible in it. ``kind`` is one line of
        at most 64 characters (:data:`ANNOUNCEMENT` when none is given)."""
        if not user_ids:
            raise BadRequest("notification.userIds must name at least one user")
        clean_title(title)
        kind = clean_text(kind or ANNOUNCEMENT, limit=64, multiline=False) or ANNOUNCEMENT
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, user_ids)
            return await self.notify(
                conn, user_ids, kind=kind, title=title, body=body, payload=payload
            )

    async def notifications_page(
        self, user_id: uuid.UUID, window: Window, *, oldest_first: bool = False
    ) -> Page[Notification]:
        """:meth:`list_page` on a pooled connection (a read: no transaction)."""
        async with self._db.acquire() as conn:
            return await self.list_page(conn, user_id, window, oldest_first=oldest_first)

    async def see(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> int:
        """Mark some of the user's notifications seen; how many changed."""
        if not ids:
            raise BadRequest("notificationIds must name at least one notification")
        async with self._db.transaction() as conn:
            return await self.mark_seen(conn, user_id, ids)

    async def add_device(self, user_id: uuid.UUID, token: str, platform: str) -> Device:
        """Register (or re-register) a push device of the user."""
        async with self._db.transaction() as conn:
            return await self.register_device(conn, user_id, token, platform)

    async def remove_device(self, user_id: uuid.UUID, device_id: uuid.UUID) -> Device:
        """Remove one of the user's devices (404 if it is not theirs)."""
        async with self._db.transaction() as conn:
            return await self.unregister_device(conn, user_id, device_id)

    # --- in the caller's transaction ------------------------------------------------------------

    async def notify(
        self,
        conn: asyncpg.Connection,
        user_ids: Sequence[uuid.UUID],
        *,
        kind: str,
        title: str,
        body: str,
        payload: dict[str, Any] | None = None,
    ) -> list[Notification]:
        """Create a notification for each user (deduplicated), in the caller's transaction."""
        return await self.notify_many(
            conn, [Notify(tuple(user_ids), kind, title, body, payload or {})]
        )

    async def notify_many(
        self, conn: asyncpg.Connection, requests: Sequence[Notify]
    ) -> builtins.list[Notification]:
        """Create the notifications of several requests in one statement."""
        groups = self.prepare(requests)
        if not groups:
            return []
        await self._store.insert_notifications(conn, groups)
        created = [n for group in groups for n in group]
        await self.announce(conn, created)
        return created

    def prepare(self, requests: Sequence[Notify]) -> builtins.list[builtins.list[Notification]]:
        """The notifications of the requests, not yet stored: a group per request (its users
        deduplicated; none for a request without users). 400 for a title with nothing
        visible in it."""
        now = datetime.now(UTC)
        groups: builtins.list[builtins.list[Notification]] = []
        for request in requests:
            users = list(dict.fromkeys(request.user_ids))
            if not users:
                continue
            title = clean_title(request.title)
            body = clean_text(request.body, limit=MAX_BODY)
            kind, payload = request.kind, request.payload
            groups.append(
                [Notification(uuid7(), u, kind, title, body, payload, now, None) for u in users]
            )
        return groups

    async def announce(
        self, conn: asyncpg.Connection, created: builtins.list[Notification]
    ) -> None:
        """Tell the listeners of notifications just stored (by :meth:`notify_many`, or by a
        statement that stored them with what caused them)."""
        for listener in self._listeners:
            await listener.notified(conn, created)

    async def list(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        limit: int = 20,
        offset: int = 0,
        unseen_only: bool = False,
    ) -> list[Notification]:
        return await self._store.list_notifications(
            conn, user_id, limit=limit, offset=offset, unseen_only=unseen_only
        )

    async def mark_seen(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None = None
    ) -> int:
        return await self._store.mark_seen(conn, user_id, ids)

    # --- REST API (appended) -------------------------------------------------------------------

    async def list_page(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        window: Window,
        *,
        oldest_first: bool = False,
    ) -> Page[Notification]:
        """One page of the user's notifications (newest first unless ``oldest_first``), the
        total and whether more follow."""
        return await self._queries.list_notifications_page(
            conn,
            user_id,
            oldest_first=oldest_first,
            after=window.after,
            limit=window.limit,
            offset=window.offset,
        )

    async def register_device(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, token: str, platform: str
    ) -> Device:
        """Register (or re-register) a push device of the user."""
        token = clean_text(token, limit=4096, multiline=False).strip()
        platform = clean_text(platform, limit=32, multiline=False).strip().lower()
        if not token:
            raise BadRequest("device.token is required")
        if not platform:
            raise BadRequest("device.platform is required")
        return await self._store.upsert_device(conn, user_id, token, platform)

    async def unregister_device(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, device_id: uuid.UUID
    ) -> Device:
        """Remove one of the user's devices (404 if it is not theirs)."""
        device = await self._store.delete_device_by_id(conn, user_id, device_id)
        if device is None:
            raise NotFound(f"no device {device_id}")
        return device
