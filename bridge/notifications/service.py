"""Notifications for network users; delivered to Matrix-linked users by a listener."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from ..errors import BadRequest, NotFound
from ..ids import clean_text
from ..listing import Page, Position
from ..uuid7 import uuid7
from .models import Device, Notification
from .queries import NotificationQueries
from .store import NotificationStore


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


class NotificationService:
    def __init__(
        self, store: NotificationStore, queries: NotificationQueries | None = None
    ) -> None:
        self._queries = queries or NotificationQueries()
        self._store = store
        self._listeners: list[NotificationListener] = []

    def add_listener(self, listener: NotificationListener) -> None:
        self._listeners.append(listener)

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
        now = datetime.now(UTC)
        groups: builtins.list[builtins.list[Notification]] = []
        for request in requests:
            users = list(dict.fromkeys(request.user_ids))
            if not users:
                continue
            title = clean_text(request.title, limit=255, multiline=False)
            body = clean_text(request.body, limit=2000)
            kind, payload = request.kind, request.payload
            groups.append(
                [Notification(uuid7(), u, kind, title, body, payload, now, None) for u in users]
            )
        if not groups:
            return []
        await self._store.insert_notifications(conn, groups)
        created = [n for group in groups for n in group]
        for listener in self._listeners:
            await listener.notified(conn, created)
        return created

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
        *,
        oldest_first: bool = False,
        after: Position | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> Page[Notification]:
        """One page of the user's notifications, the total and whether more follow; ``after``
        is a keyset position (a cursor)."""
        return await self._queries.list_notifications_page(
            conn, user_id, oldest_first=oldest_first, after=after, limit=limit, offset=offset
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
