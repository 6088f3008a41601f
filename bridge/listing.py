"""What a paged list returns, where a keyset cursor stands in one, and a whole list read in
batches (``pageNumber=0``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

import asyncpg

T = TypeVar("T")

#: A keyset position: the sort key of a row, ``(instant, id)``.
Position = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, the total matching and whether rows follow it."""

    rows: list[T]
    total: int
    more: bool


#: Rows read per batch when a whole list is written out (``pageNumber=0``).
BATCH_ROWS = 500


@dataclass(frozen=True)
class WholeList(Generic[T]):
    """Every row of a list, read in one snapshot: how many there are, known before the first
    row, then the rows batch by batch (``batches`` may be iterated once)."""

    total: int
    batches: AsyncIterator[list[T]]


async def read_whole(
    conn: asyncpg.Connection,
    count_sql: str,
    rows_sql: str,
    args: Sequence[object],
    row: Callable[[asyncpg.Record], T],
    *,
    batch: int = BATCH_ROWS,
) -> WholeList[T]:
    """Count with ``count_sql``, then read ``rows_sql`` (same ``args``) through a server-side
    cursor, ``batch`` rows at a time, so memory holds one batch whatever the total.

    ``conn`` must be in a transaction that sees one state throughout (REPEATABLE READ, see
    ``Database.snapshot``), for the count to be the number of rows read."""
    total = int(await conn.fetchval(count_sql, *args))

    async def batches() -> AsyncIterator[list[T]]:
        cursor = await conn.cursor(rows_sql, *args)
        while rows := await cursor.fetch(batch):
            yield [row(r) for r in rows]

    return WholeList(total, batches())


@dataclass(frozen=True, kw_only=True)
class Window:
    """Which rows of a list one page holds: at most ``limit``, past the keyset position
    ``after`` (a cursor's) when there is one, and ``offset`` rows further in."""

    limit: int
    offset: int = 0
    after: Position | None = None
