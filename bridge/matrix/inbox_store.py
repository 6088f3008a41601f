"""All SQL of the inbox: intake of transactions, lanes, processing state, dead letters."""

from __future__ import annotations

import asyncpg

from .events import EventKind, IncomingEvent, InboxEvent, Outcome, RejectedEvent

# Any constant works: the advisory lock namespace (first key) for inbox lanes.
_LANE_LOCK_CLASS = 0x696E62  # "inb"

_INSERT_TRANSACTION = """
WITH fresh AS (
    SELECT NOT EXISTS (
        SELECT 1 FROM appservice_txn WHERE txn_id = $1 AND body_sha256 = $2
    ) AS yes
), ins AS (
    INSERT INTO inbox (event_id, lane, kind, event_type, sender, txn_id, event)
    SELECT u.event_id, u.lane, u.kind, u.event_type, u.sender, $1, u.event::jsonb
    FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
         WITH ORDINALITY AS u(event_id, lane, kind, event_type, sender, event, ord),
         fresh
    WHERE fresh.yes
    ORDER BY u.ord
    ON CONFLICT (event_id) DO NOTHING
    RETURNING lane
), lanes AS (
    INSERT INTO inbox_lane AS l (lane)
    SELECT DISTINCT lane FROM ins ORDER BY lane
    ON CONFLICT (lane) DO UPDATE SET seq = l.seq + 1
), dead AS (
    INSERT INTO dead_letter (source, dedupe_key, event_id, room_id, txn_id, payload, error)
    SELECT 'intake', d.dedupe_key, d.event_id, d.room_id, $1, d.payload::jsonb, d.error
    FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
         AS d(dedupe_key, event_id, room_id, payload, error),
         fresh
    WHERE fresh.yes
    ON CONFLICT (dedupe_key) DO NOTHING
), txn AS (
    INSERT INTO appservice_txn (txn_id, body_sha256, event_count) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM ins
"""

_CLAIM_LANE = f"""
SELECT lane, seq FROM (
    SELECT lane, seq FROM inbox_lane
    WHERE not_before <= now()
    ORDER BY not_before
    LIMIT 64
) candidates
WHERE pg_try_advisory_xact_lock({_LANE_LOCK_CLASS}, hashtext(lane))
LIMIT 1
"""

_LIST_PENDING = """
SELECT id, event_id, lane, kind, event_type, sender, txn_id, event, attempts, received_at
FROM inbox
WHERE lane = $1 AND state = 'pending'
ORDER BY id
LIMIT $2
"""

_MARK_DONE = """
UPDATE inbox SET state = d.state, processed_at = now(), last_error = NULL
FROM unnest($1::bigint[], $2::text[]) AS d(id, state)
WHERE inbox.id = d.id
"""


class InboxStore:
    """The inbox tables. Methods take the connection (and so the DB transaction) to act in."""

    async def insert_transaction(
        self,
        conn: asyncpg.Connection,
        txn_id: str,
        body_sha256: bytes,
        events: list[IncomingEvent],
        rejected: list[RejectedEvent],
    ) -> int:
        """Store a transaction's events and rejects atomically; return how many were new.

        Events already in the inbox (same event id) and a transaction already received with the
        same body are skipped, so resends and concurrent duplicates store nothing twice.
        """
        count = await conn.fetchval(
            _INSERT_TRANSACTION,
            txn_id,
            body_sha256,
            len(events) + len(rejected),
            [e.event_id for e in events],
            [e.lane for e in events],
            [e.kind.value for e in events],
            [e.event_type for e in events],
            [e.sender for e in events],
            [e.json for e in events],
            [r.dedupe_key for r in rejected],
            [r.event_id for r in rejected],
            [r.room_id for r in rejected],
            [r.json for r in rejected],
            [r.error for r in rejected],
        )
        return int(count)

    async def claim_lane(self, conn: asyncpg.Connection) -> tuple[str, int] | None:
        """Lock the lane due first that no other worker holds, for this DB transaction."""
        row = await conn.fetchrow(_CLAIM_LANE)
        return None if row is None else (row["lane"], row["seq"])

    async def list_pending(self, conn: asyncpg.Connection, lane: str, limit: int) -> list[InboxEvent]:
        """The lane's pending events in arrival order."""
        rows = await conn.fetch(_LIST_PENDING, lane, limit)
        return [
            InboxEvent(
                id=r["id"],
                event_id=r["event_id"],
                lane=r["lane"],
                kind=EventKind(r["kind"]),
                event_type=r["event_type"],
                sender=r["sender"],
                txn_id=r["txn_id"],
                event=r["event"],
                attempts=r["attempts"],
                received_at=r["received_at"],
            )
            for r in rows
        ]

    async def mark_done(
        self, conn: asyncpg.Connection, ids: list[int], outcomes: list[Outcome]
    ) -> None:
        await conn.execute(_MARK_DONE, ids, [o.value for o in outcomes])

    async def record_failure(
        self, conn: asyncpg.Connection, event_id: int, attempts: int, error: str
    ) -> None:
        await conn.execute(
            "UPDATE inbox SET attempts = $2, last_error = $3 WHERE id = $1",
            event_id,
            attempts,
            error,
        )

    async def dead_letter(
        self, conn: asyncpg.Connection, event: InboxEvent, attempts: int, error: str
    ) -> None:
        """Move a failing event to the dead letters; its lane goes on without it."""
        await conn.execute(
            """
            WITH moved AS (
                UPDATE inbox SET state = 'dead', attempts = $2, last_error = $3,
                                 processed_at = now()
                WHERE id = $1
                RETURNING event_id, lane, txn_id, event
            )
            INSERT INTO dead_letter (source, dedupe_key, event_id, room_id, txn_id, payload,
                                     error, attempts)
            SELECT 'inbox', 'inbox:' || event_id, event_id, NULLIF(lane, ''), txn_id, event,
                   $3, $2
            FROM moved
            ON CONFLICT (dedupe_key) DO NOTHING
            """,
            event.id,
            attempts,
            error,
        )

    async def postpone_lane(self, conn: asyncpg.Connection, lane: str, seconds: float) -> None:
        """Keep the lane, due again after ``seconds`` (0: at the back of the queue)."""
        await conn.execute(
            "UPDATE inbox_lane SET not_before = now() + make_interval(secs => $2) WHERE lane = $1",
            lane,
            seconds,
        )

    async def release_lane(self, conn: asyncpg.Connection, lane: str, seq: int) -> bool:
        """Drop the lane if it has nothing pending and no intake touched it since the claim."""
        status = await conn.execute(
            """
            DELETE FROM inbox_lane
            WHERE lane = $1 AND seq = $2
              AND NOT EXISTS (SELECT 1 FROM inbox WHERE lane = $1 AND state = 'pending')
            """,
            lane,
            seq,
        )
        return bool(status == "DELETE 1")

    async def seconds_until_due(self, conn: asyncpg.Connection) -> float | None:
        """Seconds until the next lane is due (0 if one is), None when no lane is waiting."""
        # (Not GREATEST in SQL: it skips NULLs, turning "no lane" into 0.)
        value = await conn.fetchval(
            "SELECT EXTRACT(EPOCH FROM min(not_before) - now()) FROM inbox_lane"
        )
        return None if value is None else max(float(value), 0.0)

    async def count_by_state(self, conn: asyncpg.Connection) -> dict[str, int]:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM inbox GROUP BY state")
        return {r["state"]: r["n"] for r in rows}
