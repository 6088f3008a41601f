"""The SQL of ``pageNumber=0`` for connections and connection requests: every row of a REST
list, in the order of the paged lists, as one count and one statement read through a
server-side cursor (see :func:`bridge.listing.read_whole`)."""

from __future__ import annotations

import uuid

import asyncpg

from ..listing import WholeList, read_whole
from .models import Connection, ConnectionRequest, RequestFilter
from .store import _CONNECTION, _REQUEST, _request


def _connection(row: asyncpg.Record) -> Connection:
    return Connection(**dict(row))


class NetworkingWholeLists:
    """Whole lists of the REST API (reads only); the caller holds the snapshot."""

    async def connections(
        self, conn: asyncpg.Connection, user_id: uuid.UUID
    ) -> WholeList[Connection]:
        """Every connection of the user, newest first."""
        source = "FROM connection WHERE user_low = $1 OR user_high = $1"
        return await read_whole(
            conn,
            f"SELECT count(*) {source}",
            f"SELECT {_CONNECTION} {source} ORDER BY connected_since DESC, id",
            (user_id,),
            _connection,
        )

    async def requests(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, filters: RequestFilter
    ) -> WholeList[ConnectionRequest]:
        """Every request the user sent or received that ``filters`` keeps, newest first."""
        statuses = filters.statuses
        source = """
            FROM connection_request
            WHERE (sender_id = $1 OR receiver_id = $1)
              AND ($2::text[] IS NULL OR status = ANY($2::text[]))
        """
        return await read_whole(
            conn,
            f"SELECT count(*) {source}",
            f"SELECT {_REQUEST} {source} ORDER BY sent_at DESC, id",
            (user_id, None if statuses is None else [s.value for s in statuses]),
            _request,
        )
