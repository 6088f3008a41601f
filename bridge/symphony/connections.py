"""Symphony's connection calls: the networking service's requests and connections, with the
other user named by their numeric id and the answer being the standing as the caller sees it.

Entry points only (each opens its own transaction); the networking service they call tells its
listeners, so Matrix sees a change made here like one made through the seed-002 routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ..db.database import Database
from ..errors import Conflict, NotFound
from ..networking.models import Connection, ConnectionRequest, RequestStatus
from ..networking.service import NetworkingService
from ..users.models import NetworkUser
from ..users.service import UserService

#: What ``list`` answers when no status is asked for.
PENDING = ("PENDING_INCOMING", "PENDING_OUTGOING")
#: Every standing there is (``ALL``).
STATUSES = ("PENDING_INCOMING", "PENDING_OUTGOING", "ACCEPTED", "REJECTED")


@dataclass(frozen=True)
class Standing:
    """The caller's standing with the user ``number``: ``status`` is one of :data:`STATUSES`;
    the latest request between the two and their connection, when there are."""

    number: int
    status: str
    request: ConnectionRequest | None
    connection: Connection | None


class SymphonyConnections:
    def __init__(self, db: Database, users: UserService, networking: NetworkingService) -> None:
        self._db = db
        self._users = users
        self._networking = networking

    async def standings(
        self, user_id: uuid.UUID, status: str | None = None, numbers: Sequence[int] | None = None
    ) -> list[Standing]:
        """The user's standings of ``status`` (one of :data:`STATUSES`; ``ALL``: every one;
        None: both pending ones), with the users ``numbers`` only when given (numbers that name
        no user are left out, as Symphony does)."""
        wanted = PENDING if status is None else STATUSES if status == "ALL" else (status,)
        async with self._db.transaction() as conn:
            other_ids = None
            if numbers is not None:
                found = await self._users.by_numbers(conn, numbers)
                other_ids = [user.id for user in found.values()]
            relations = await self._networking.relations(conn, user_id, other_ids)
            users = await self._users.get_many(conn, [other for other, *_ in relations])
        number_of = {user.id: user.number for user in users}
        return [
            Standing(number_of[other], standing, request, connection)
            for other, standing, request, connection in relations
            if standing in wanted
        ]

    async def standing_with(self, user_id: uuid.UUID, number: int) -> Standing:
        """The standing with the user ``number`` (404 when there is none, or no such user)."""
        async with self._db.transaction() as conn:
            other = await self._users.by_number(conn, number)
            relations = await self._networking.relations(conn, user_id, [other.id])
        for _, status, request, connection in relations:
            return Standing(other.number, status, request, connection)
        raise NotFound(f"no connection with user {other.number}")

    async def invite(self, user_id: uuid.UUID, number: int) -> Standing:
        """Ask the user ``number`` to connect (409 for oneself); the standing as the inviter
        sees it (``ACCEPTED`` when the other had asked first and this accepted it)."""
        async with self._db.transaction() as conn:
            other = await self._other(conn, user_id, number)
            sent, _ = await self._networking.send_request(conn, user_id, other.id)
        status = "ACCEPTED" if sent.status is RequestStatus.ACCEPTED else sent.seen_from(user_id)
        return Standing(other.number, status, sent, None)

    async def answer(self, user_id: uuid.UUID, number: int, *, accept: bool) -> Standing:
        """Accept or reject the pending invitation from the user ``number`` (404 if none)."""
        async with self._db.transaction() as conn:
            other = await self._users.by_number(conn, number)
            answered = await self._networking.answer_from(conn, user_id, other.id, accept=accept)
        return Standing(other.number, answered.status.value.upper(), answered, None)

    async def remove(self, user_id: uuid.UUID, number: int) -> None:
        """End the connection with the user ``number`` (404 when not connected); their direct
        room stays, unconnected."""
        async with self._db.transaction() as conn:
            other = await self._users.by_number(conn, number)
            await self._networking.disconnect(conn, user_id, other.id)

    async def _other(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, number: int
    ) -> NetworkUser:
        other = await self._users.by_number(conn, number)
        if other.id == user_id:
            raise Conflict("cannot connect to yourself")
        return other
