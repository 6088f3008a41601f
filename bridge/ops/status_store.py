"""Read-only SQL for operators: queue depths and ages, the last transaction, gaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Rows waiting in a queue and the age in seconds of the oldest (0 when empty)."""

    count: int
    oldest_seconds: float


@dataclass(frozen=True, slots=True)
class LastTransaction:
    txn_id: str
    received_at: datetime
    event_count: int


@dataclass(frozen=True, slots=True)
class BridgeState:
    """What the bridge's tables say right now."""

    inbox: dict[str, QueueDepth]  # 'pending' (never tried) and 'retrying'
    outbox: QueueDepth
    dead_letters: dict[str, int]  # waiting (not replayed) per source
    last_transaction: LastTransaction | None
    open_gaps: int


class StatusStore:
    async def get_state(self, conn: asyncpg.Connection) -> BridgeState:
        """One consistent read of the queues (a handful of index scans)."""
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            inbox_rows = await conn.fetch(
                """
                SELECT CASE WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END AS state,
                       count(*) AS n,
                       COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0) AS age
                FROM inbox WHERE state = 'pending'
                GROUP BY 1
                """
            )
            outbox = await conn.fetchrow(
                """
                SELECT count(*) AS n,
                       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS age
                FROM outbox WHERE state = 'pending'
                """
            )
            dead = await conn.fetch(
                "SELECT source, count(*) AS n FROM dead_letter WHERE replayed_at IS NULL"
                " GROUP BY source"
            )
            last = await conn.fetchrow(
                "SELECT txn_id, received_at, event_count FROM appservice_txn"
                " ORDER BY received_at DESC LIMIT 1"
            )
            gaps = await conn.fetchval(
                "SELECT count(*) FROM txn_gap WHERE state IN ('open', 'due', 'forced')"
            )
        inbox = {"pending": QueueDepth(0, 0.0), "retrying": QueueDepth(0, 0.0)}
        for r in inbox_rows:
            inbox[r["state"]] = QueueDepth(int(r["n"]), float(r["age"]))
        return BridgeState(
            inbox=inbox,
            outbox=QueueDepth(int(outbox["n"]), float(outbox["age"])),
            dead_letters={r["source"]: int(r["n"]) for r in dead},
            last_transaction=None
            if last is None
            else LastTransaction(last["txn_id"], last["received_at"], int(last["event_count"])),
            open_gaps=int(gaps),
        )
