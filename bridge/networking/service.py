"""Networking rules: requests answered only by their receiver, cancelled only by their sender.

Transactions, as in every service: a method that takes ``conn`` runs in the caller's DB
transaction; a method without ``conn`` is an entry point that takes its own connection and opens
the transaction itself (see :mod:`bridge.users.service`).

Over 400 lines because connections and connection requests are one set of rules (accepting a
request makes the connection, a disconnect or a deletion ends what a request began), each rule
with its pooled entry point beside it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import asyncpg

from ..db.database import Database
from ..errors import Conflict, Forbidden, NotFound
from ..ids import clean_text
from ..listing import WholeList
from ..notifications.service import NotificationService
from ..users.service import UserService
from .models import Connection, ConnectionRequest, RequestFilter, RequestStatus
from .store import NetworkingStore
from .whole_store import NetworkingWholeLists

MAX_REQUEST_MESSAGE = 1000


class NetworkingListener(Protocol):
    """Told of every change, in its DB transaction."""

    async def request_sent(
        self, conn: asyncpg.Connection, request: ConnectionRequest, created: bool
    ) -> None: ...

    async def request_answered(
        self, conn: asyncpg.Connection, request: ConnectionRequest
    ) -> None: ...

    async def disconnected(self, conn: asyncpg.Connection, connection: Connection) -> None: ...


class NetworkingService:
    def __init__(
        self,
        db: Database,
        store: NetworkingStore,
        notifications: NotificationService,
        users: UserService,
    ) -> None:
        self._db = db
        self._store = store
        self._whole = NetworkingWholeLists()
        self._notifications = notifications
        self._users = users
        self._listeners: list[NetworkingListener] = []

    def add_listener(self, listener: NetworkingListener) -> None:
        self._listeners.append(listener)

    # --- entry points (own connection and transaction) ------------------------------------------

    async def connections_page(
        self, user_id: uuid.UUID, *, limit: int = 25, offset: int = 0
    ) -> tuple[list[Connection], int]:
        """:meth:`list_connections_page` in a transaction of its own (page and total agree)."""
        async with self._db.transaction() as conn:
            return await self.list_connections_page(conn, user_id, limit=limit, offset=offset)

    async def connection_for(self, user_id: uuid.UUID, connection_id: uuid.UUID) -> Connection:
        """:meth:`get_connection_for` on a pooled connection."""
        async with self._db.acquire() as conn:
            return await self.get_connection_for(conn, user_id, connection_id)

    async def connect(self, a: uuid.UUID, b: uuid.UUID) -> Connection:
        """Connect two existing users without a request (an administrator's act)."""
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, [a, b])
            return await self.connect_directly(conn, a, b)

    async def end_connection(self, user_id: uuid.UUID, connection_id: uuid.UUID) -> Connection:
        """Either user ends a connection."""
        async with self._db.transaction() as conn:
            return await self.disconnect_by_id(conn, user_id, connection_id)

    async def requests_page(
        self, user_id: uuid.UUID, filters: RequestFilter, *, limit: int = 25, offset: int = 0
    ) -> tuple[list[ConnectionRequest], int]:
        """:meth:`list_requests_page` in a transaction of its own (page and total agree)."""
        async with self._db.transaction() as conn:
            return await self.list_requests_page(conn, user_id, filters, limit=limit, offset=offset)

    @asynccontextmanager
    async def all_connections(self, user_id: uuid.UUID) -> AsyncIterator[WholeList[Connection]]:
        """Every connection of the user (pageNumber=0), in one snapshot."""
        async with self._db.snapshot() as conn:
            yield await self._whole.connections(conn, user_id)

    @asynccontextmanager
    async def all_requests(
        self, user_id: uuid.UUID, filters: RequestFilter
    ) -> AsyncIterator[WholeList[ConnectionRequest]]:
        """Every request the user sent or received (pageNumber=0), in one snapshot."""
        async with self._db.snapshot() as conn:
            yield await self._whole.requests(conn, user_id, filters)

    async def request_for(self, user_id: uuid.UUID, request_id: uuid.UUID) -> ConnectionRequest:
        """:meth:`get_request_for` on a pooled connection."""
        async with self._db.acquire() as conn:
            return await self.get_request_for(conn, user_id, request_id)

    async def ask(
        self, sender: uuid.UUID, receiver: uuid.UUID, *, message: str | None = None
    ) -> tuple[ConnectionRequest, bool]:
        """:meth:`send_request` to an existing user (404 otherwise); (request, created)."""
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, [receiver])
            return await self.send_request(conn, sender, receiver, message=message)

    async def answer(
        self, receiver: uuid.UUID, request_id: uuid.UUID, *, accept: bool
    ) -> ConnectionRequest:
        """The receiver accepts or rejects a pending request (404/403 for anyone else)."""
        async with self._db.transaction() as conn:
            await self.get_request_for(conn, receiver, request_id)
            if accept:
                return await self.accept(conn, receiver=receiver, request_id=request_id)
            return await self.reject(conn, receiver=receiver, request_id=request_id)

    async def take_back(self, user_id: uuid.UUID, request_id: uuid.UUID) -> ConnectionRequest:
        """:meth:`withdraw` in a transaction of its own."""
        async with self._db.transaction() as conn:
            return await self.withdraw(conn, user_id, request_id)

    async def standings(
        self, user_id: uuid.UUID, other_ids: list[uuid.UUID] | None = None
    ) -> list[tuple[uuid.UUID, str, ConnectionRequest | None, Connection | None]]:
        """:meth:`relations` on a pooled connection."""
        async with self._db.acquire() as conn:
            return await self.relations(conn, user_id, other_ids)

    # --- in the caller's transaction ------------------------------------------------------------

    async def is_connected(self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID) -> bool:
        return await self._store.get_connection(conn, a, b) is not None

    async def unconnected(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, others: Sequence[uuid.UUID]
    ) -> list[uuid.UUID]:
        """Those of ``others`` (other than ``user_id``) not connected to ``user_id``, in order."""
        wanted = [u for u in dict.fromkeys(others) if u != user_id]
        if not wanted:
            return []
        connected = await self._store.list_connected(conn, user_id, wanted)
        return [u for u in wanted if u not in connected]

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
            raise Conflict("cannot connect to yourself")
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
                conn,
                [receiver],
                kind="connection_request",
                title="New connection request",
                body=text or "",
                payload={"requestId": str(request.id), "senderUserId": str(sender)},
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
        self,
        conn: asyncpg.Connection,
        request_id: uuid.UUID,
        status: RequestStatus,
        *,
        delete: bool = False,
    ) -> ConnectionRequest:
        answered = await self._store.set_request_status(conn, request_id, status, delete=delete)
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
            conn,
            [request.sender_id],
            kind="connection_accepted",
            title="Connection request accepted",
            body="",
            payload={"requestId": str(request.id), "userId": str(receiver)},
        )
        return answered

    async def reject(
        self,
        conn: asyncpg.Connection,
        *,
        receiver: uuid.UUID,
        request_id: uuid.UUID,
        delete: bool = False,
    ) -> ConnectionRequest:
        """The receiver rejects; ``delete``: their DELETE, which also soft-deletes it (a
        rejection alone is an answer, and the request stays active)."""
        await self._pending_for(conn, request_id, receiver, party="receiver")
        return await self._answer(conn, request_id, RequestStatus.REJECTED, delete=delete)

    async def cancel(
        self, conn: asyncpg.Connection, *, sender: uuid.UUID, request_id: uuid.UUID
    ) -> ConnectionRequest:
        """The sender withdraws: cancelled and soft-deleted."""
        await self._pending_for(conn, request_id, sender, party="sender")
        return await self._answer(conn, request_id, RequestStatus.CANCELLED, delete=True)

    async def disconnect(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, other: uuid.UUID
    ) -> Connection:
        removed = await self._store.delete_connection(conn, user_id, other)
        if removed is None:
            raise NotFound("not connected")
        for listener in self._listeners:
            await listener.disconnected(conn, removed)
        return removed

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
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        incoming: bool | None = None,
        status: RequestStatus | None = None,
        limit: int = 25,
        offset: int = 0,
    ) -> list[ConnectionRequest]:
        return await self._store.list_requests(
            conn, user_id, incoming=incoming, status=status, limit=limit, offset=offset
        )

    async def list_connections(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, limit: int = 25, offset: int = 0
    ) -> list[Connection]:
        return await self._store.list_connections(conn, user_id, limit=limit, offset=offset)

    # --- REST API ------------------------------------------------------------------------------
    # (appended: lookups by id, paged lists, answering by the other user, per-pair relations)

    async def get_connection_for(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, connection_id: uuid.UUID
    ) -> Connection:
        """A connection, for one of its two users only."""
        connection = await self._store.get_connection_by_id(conn, connection_id)
        if connection is None:
            raise NotFound(f"no connection {connection_id}")
        if user_id not in (connection.user_low, connection.user_high):
            raise Forbidden("only the connected users can see a connection")
        return connection

    async def disconnect_by_id(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, connection_id: uuid.UUID
    ) -> Connection:
        """Either user ends a connection."""
        connection = await self.get_connection_for(conn, user_id, connection_id)
        return await self.disconnect(conn, user_id, connection.other(user_id))

    async def connect_directly(
        self, conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID
    ) -> Connection:
        """Connect two users without a request (an administrator's act)."""
        if a == b:
            raise Conflict("cannot connect a user to themselves")
        if await self.is_connected(conn, a, b):
            raise Conflict("already connected")
        return await self._store.insert_connection(conn, a, b)

    async def withdraw(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, request_id: uuid.UUID
    ) -> ConnectionRequest:
        """Delete a pending request (the reference's soft delete): its sender cancels it, its
        receiver rejects it; either way it is no longer active."""
        request = await self.get_request_for(conn, user_id, request_id)
        if request.sender_id == user_id:
            return await self.cancel(conn, sender=user_id, request_id=request_id)
        return await self.reject(conn, receiver=user_id, request_id=request_id, delete=True)

    async def answer_from(
        self,
        conn: asyncpg.Connection,
        receiver: uuid.UUID,
        sender: uuid.UUID,
        *,
        accept: bool,
    ) -> ConnectionRequest:
        """Accept or reject the pending request ``sender`` sent ``receiver`` (404 if none)."""
        pending = await self._store.get_pending_between(conn, receiver, sender)
        if pending is None or pending.sender_id != sender:
            raise NotFound("no pending connection request from that user")
        if accept:
            return await self.accept(conn, receiver=receiver, request_id=pending.id)
        return await self.reject(conn, receiver=receiver, request_id=pending.id)

    async def list_requests_page(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        filters: RequestFilter,
        *,
        limit: int = 25,
        offset: int = 0,
    ) -> tuple[list[ConnectionRequest], int]:
        """One page of the requests the user sent or received, newest first, and the total."""
        return await self._store.list_requests_page(
            conn, user_id, filters, limit=limit, offset=offset
        )

    async def list_connections_page(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, limit: int = 25, offset: int = 0
    ) -> tuple[list[Connection], int]:
        """One page of the user's connections, newest first, and the total."""
        rows = await self._store.list_connections(conn, user_id, limit=limit, offset=offset)
        return rows, await self._store.count_connections(conn, user_id)

    async def relations(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        other_ids: list[uuid.UUID] | None = None,
    ) -> list[tuple[uuid.UUID, str, ConnectionRequest | None, Connection | None]]:
        """The user's standing with each other user, Symphony-style.

        ``ACCEPTED`` while connected; otherwise the latest request between the two decides:
        pending is ``PENDING_INCOMING`` / ``PENDING_OUTGOING`` as the user sees it, rejected is
        ``REJECTED``; a cancelled request, or an accepted one whose connection has since ended,
        leaves no standing and the pair is left out.
        """
        standings: list[tuple[uuid.UUID, str, ConnectionRequest | None, Connection | None]] = []
        for other, request, connection in await self._store.list_relations(
            conn, user_id, other_ids
        ):
            if connection is not None:
                standings.append((other, "ACCEPTED", request, connection))
            elif request is not None and request.status in (
                RequestStatus.PENDING,
                RequestStatus.REJECTED,
            ):
                standings.append((other, request.seen_from(user_id), request, None))
        return standings
