"""All SQL of the transaction-gap watch: the homeserver's highest id, and the gaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class TxnGap:
    id: int
    missing_id: int
    after_txn: str
    state: str
    detected_at: datetime
    forced_at: datetime | None
    forced_txn: str | None
    closed_at: datetime | None


class GapStore:
    """Methods take the connection (and so the DB transaction) to act in."""

    async def lock_high(self, conn: asyncpg.Connection) -> int | None:
        """The highest transaction id of the homeserver's current run, row-locked."""
        value = await conn.fetchval("SELECT high FROM txn_watch WHERE id = 1 FOR UPDATE")
        return None if value is None else int(value)

    async def set_high(self, conn: asyncpg.Connection, high: int) -> None:
        await conn.execute("UPDATE txn_watch SET high = $1, updated_at = now() WHERE id = 1", high)

    async def txn_seen(self, conn: asyncpg.Connection, txn_id: str) -> bool:
        """Whether a transaction with this id was stored before (any body)."""
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM appservice_txn WHERE txn_id = $1)", txn_id
            )
        )

    async def insert_gaps(
        self, conn: asyncpg.Connection, missing: list[int], after_txn: str
    ) -> int:
        """Record skipped ids (those already unresolved are left alone); return how many."""
        status = await conn.execute(
            """
            INSERT INTO txn_gap (missing_id, after_txn)
            SELECT m, $2 FROM unnest($1::bigint[]) AS m
            ON CONFLICT (missing_id) WHERE state IN ('open', 'due', 'forced') DO NOTHING
            """,
            missing,
            after_txn,
        )
        return int(status.split()[-1])

    async def close_gap(self, conn: asyncpg.Connection, missing_id: int) -> str | None:
        """Mark an unresolved gap healed; return the state it was in (None: no such gap)."""
        return await conn.fetchval(  # type: ignore[no-any-return]
            """
            WITH old AS (
                SELECT id, state FROM txn_gap
                WHERE missing_id = $1 AND state IN ('open', 'due', 'forced')
                FOR UPDATE
            )
            UPDATE txn_gap g SET state = 'healed', closed_at = now()
            FROM old WHERE g.id = old.id
            RETURNING old.state
            """,
            missing_id,
        )

    async def claim_due(self, conn: asyncpg.Connection, txn_id: str, grace: float) -> list[int]:
        """Mark the gaps past their grace period forced by refusing ``txn_id``; their ids."""
        rows = await conn.fetch(
            """
            UPDATE txn_gap SET state = 'forced', forced_at = now(), forced_txn = $1
            WHERE state = 'due'
               OR (state = 'open' AND detected_at < now() - make_interval(secs => $2))
            RETURNING missing_id
            """,
            txn_id,
            grace,
        )
        return sorted(int(r["missing_id"]) for r in rows)

    async def mark_due(self, conn: asyncpg.Connection, grace: float) -> list[int]:
        """Open gaps past their grace period become due; their ids."""
        rows = await conn.fetch(
            """
            UPDATE txn_gap SET state = 'due'
            WHERE state = 'open' AND detected_at < now() - make_interval(secs => $1)
            RETURNING missing_id
            """,
            grace,
        )
        return sorted(int(r["missing_id"]) for r in rows)

    async def give_up(self, conn: asyncpg.Connection, grace: float) -> list[int]:
        """Forced gaps still missing a grace period later are given up on; their ids."""
        rows = await conn.fetch(
            """
            UPDATE txn_gap SET state = 'given_up', closed_at = now()
            WHERE state = 'forced' AND forced_at < now() - make_interval(secs => $1)
            RETURNING missing_id
            """,
            grace,
        )
        return sorted(int(r["missing_id"]) for r in rows)

    async def list_recent(self, conn: asyncpg.Connection, limit: int) -> list[TxnGap]:
        """The latest gaps, unresolved first."""
        rows = await conn.fetch(
            """
            SELECT * FROM txn_gap
            ORDER BY state IN ('open', 'due', 'forced') DESC, id DESC
            LIMIT $1
            """,
            limit,
        )
        return [TxnGap(**dict(r)) for r in rows]
