"""Networking rules: requests answered only by their receiver, cancelled only by their sender."""

from __future__ import annotations

import uuid
from typing import Protocol

import asyncpg

from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..ids import clean_text
from ..notifications.service import NotificationService
from .models import Connection, ConnectionRequest, RequestStatus
from .store import NetworkingStore

MAX_REQUEST_MESSAGE = 1000


class NetworkingListener(Protocol):
    """Told of every change, in its DB transaction."""

    async def request_sent(
        self, conn: asyncpg.Connection, request: ConnectionRequest, created: bool
    ) -> None: ...

    async def request_answered(self, conn: asyncpg.Connection, request: ConnectionRequest) -> None: ...

    async def disconnected(self, conn: asyncpg.Connection, connection: Connection) -> None: ...


class NetworkingService:
    def __init__(self, store: NetworkingStore, notifications: NotificationService) -> None:
        self._store = store
        self._notifications = notifications
        self._listeners: list[NetworkingListener] = []

    def add_listener(self, listener: NetworkingListener) -> None:
        self._listeners.append(listener)

    async def is_connected(self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID) -> bool:
        return await self._store.get_connection(conn, a, b) is not None

    async def send_request(
        self,
        conn: asyncpg.Connection,
        sender: uuid.UUID,
        receiver: uuid.UUID,
        *,
        message: str | None = None,
        room_id: str | None = None,
    ) -> tuple[ConnectionRequest, bool]:
        """Ask to connect. A repeat raises the pending request's counter; (request, created).

        When the receiver already asked the sender, this accepts that request instead.
        """
        if sender == receiver:
            raise BadRequest("cannot connect to yourself")
        if await self.is_connected(conn, sender, receiver):
            raise Conflict("already connected")
        pending = await self._store.get_pending_between(conn, sender, receiver)
        if pending is not None and pending.sender_id == receiver:
            return await self.accept(conn, receiver=sender, request_id=pending.id), False
        text = clean_text(message, limit=MAX_REQUEST_MESSAGE).strip() if message else None
        request, created = await self._store.upsert_pending_request(
            conn, uuid.uuid4(), sender, receiver, text or None, room_id
        )
        if created:
            await self._notifications.notify(
                conn, [receiver], kind="connection_request", title="New connection request",
                body=text or "", payload={"requestId": str(request.id), "senderUserId": str(sender)},
            )
        for listener in self._listeners:
            await listener.request_sent(conn, request, created)
        return request, created

    async def get_request_for(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, request_id: uuid.UUID
    ) -> ConnectionRequest:
        request = await self._store.get_request(conn, request_id)
        if request is None:
            raise NotFound(f"no connection request {request_id}")
        if user_id not in (request.sender_id, request.receiver_id):
            raise Forbidden("only the parties can see a connection request")
        return request

    async def _answer(
        self, conn: asyncpg.Connection, request_id: uuid.UUID, status: RequestStatus
    ) -> ConnectionRequest:
        answered = await self._store.set_request_status(conn, request_id, status)
        if answered is None:
            raise Conflict("the request is no longer pending")
        for listener in self._listeners:
            await listener.request_answered(conn, answered)
        return answered

    async def _pending_for(
        self, conn: asyncpg.Connection, request_id: uuid.UUID, user_id: uuid.UUID, *, party: str
    ) -> ConnectionRequest:
        request = await self._store.get_request(conn, request_id, for_update=True)
        if request is None:
            raise NotFound(f"no connection request {request_id}")
        allowed = request.receiver_id if party == "receiver" else request.sender_id
        if user_id != allowed:
            raise Forbidden(f"only the request's {party} can do that")
        if request.status is not RequestStatus.PENDING:
            raise Conflict(f"the request is already {request.status.value}")
        return request

    async def accept(
        self, conn: asyncpg.Connection, *, receiver: uuid.UUID, request_id: uuid.UUID
    ) -> ConnectionRequest:
        """The receiver accepts: the connection is created in the same transaction."""
        request = await self._pending_for(conn, request_id, receiver, party="receiver")
        await self._store.insert_connection(conn, request.sender_id, request.receiver_id)
        answered = await self._answer(conn, request_id, RequestStatus.ACCEPTED)
        await self._notifications.notify(
            conn, [request.sender_id], kind="connection_accepted",
            title="Connection request accepted", body="",
            payload={"requestId": str(request.id), "userId": str(receiver)},
        )
        return answered

    async def reject(
        self, conn: asyncpg.Connection, *, receiver: uuid.UUID, request_id: uuid.UUID
    ) -> ConnectionRequest:
        await self._pending_for(conn, request_id, receiver, party="receiver")
        return await self._answer(conn, request_id, RequestStatus.REJECTED)

    async def cancel(
        self, conn: asyncpg.Connection, *, sender: uuid.UUID, request_id: uuid.UUID
    ) -> ConnectionRequest:
        await self._pending_for(conn, request_id, sender, party="sender")
        return await self._answer(conn, request_id, RequestStatus.CANCELLED)

    async def disconnect(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, other: uuid.UUID
    ) -> Connection:
        removed = await self._store.delete_connection(conn, user_id, other)
        if removed is None:
            raise NotFound("not connected")
        for listener in self._listeners:
            await listener.disconnected(conn, removed)
        return removed

    async def pending_between(
        self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID
    ) -> ConnectionRequest | None:
        return await self._store.get_pending_between(conn, a, b)

    async def set_request_room(
        self, conn: asyncpg.Connection, request_id: uuid.UUID, room_id: str
    ) -> None:
        """Record the Matrix direct room a request lives in (once)."""
        await self._store.set_request_room(conn, request_id, room_id)

    async def request_in_room(
        self, conn: asyncpg.Connection, room_id: str
    ) -> ConnectionRequest | None:
        return await self._store.get_request_by_room(conn, room_id)

    async def list_requests(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, incoming: bool | None = None,
        status: RequestStatus | None = None, limit: int = 25, offset: int = 0,
    ) -> list[ConnectionRequest]:
        return await self._store.list_requests(
            conn, user_id, incoming=incoming, status=status, limit=limit, offset=offset
        )

    async def list_connections(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, limit: int = 25, offset: int = 0
    ) -> list[Connection]:
        return await self._store.list_connections(conn, user_id, limit=limit, offset=offset)
