"""All SQL of the inbox: intake of transactions, lanes, processing state, dead letters."""

from __future__ import annotations

import asyncpg

from ...db.purge import first_kept
from .events import EventKind, InboxEvent, IncomingEvent, Outcome, RejectedEvent

# Any constant works: the advisory lock namespace (first key) for inbox lanes.
_LANE_LOCK_CLASS = 0x696E62  # "inb"

_INSERT_TRANSACTION = """
WITH watch AS (
    -- The transaction-gap watch's common case ($17: the transaction's number, NULL when not
    -- watched): the number right after the highest seen, and no gap past its grace ($18 s).
    -- Anything else stores nothing here: the watch's full path runs, then the transaction.
    UPDATE txn_watch SET high = $17::bigint, updated_at = now()
    WHERE id = 1 AND high = $17::bigint - 1 AND NOT EXISTS (
        SELECT 1 FROM txn_gap
        WHERE state = 'due'
           OR (state = 'open' AND detected_at < now() - make_interval(secs => $18))
    )
    RETURNING 1
), admitted AS (
    SELECT $17::bigint IS NULL OR EXISTS (SELECT 1 FROM watch) AS yes
), fresh AS (
    SELECT admitted.yes AND NOT EXISTS (
        SELECT 1 FROM appservice_txn WHERE txn_id = $1 AND body_sha256 = $2
    ) AS yes
    FROM admitted
), body AS (
    -- Each PDU as the homeserver sent it: the body is parsed once, each element taken once.
    SELECT e.pos - 1 AS idx, e.event
    FROM jsonb_array_elements($15::text::jsonb -> 'events') WITH ORDINALITY AS e(event, pos)
), ins AS (
    INSERT INTO inbox (event_id, lane, kind, event_type, sender, txn_id, event)
    SELECT u.event_id, u.lane, u.kind, u.event_type, u.sender, $1,
           COALESCE(u.event::jsonb, body.event)
    FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                $16::int[])
         WITH ORDINALITY AS u(event_id, lane, kind, event_type, sender, event, idx, ord)
         LEFT JOIN body ON body.idx = u.idx
         CROSS JOIN fresh
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
    INSERT INTO appservice_txn (txn_id, body_sha256, event_count)
    SELECT $1, $2, $3 FROM admitted WHERE admitted.yes
    ON CONFLICT DO NOTHING
)
SELECT (SELECT count(*) FROM ins) AS stored, (SELECT yes FROM admitted) AS admitted
"""

# The candidates are read lazily, so a wide window costs nothing until the first lanes are
# taken: with many workers (in several processes) each wanting ``$1`` lanes, a window of a few
# claims' worth would leave the later ones with none while lanes further back wait.
_CLAIM_LANES = f"""
SELECT lane, seq FROM (
    SELECT lane, seq FROM inbox_lane
    WHERE not_before <= now()
    ORDER BY not_before
    LIMIT $1 * 16
) candidates
WHERE pg_try_advisory_xact_lock({_LANE_LOCK_CLASS}, hashtext(lane))
LIMIT $1
"""
# The same, and the transaction's commit does not wait for its WAL to reach the disk
# (``synchronous_commit`` off for this transaction only): see InboxProcessor.
_CLAIM_LANES_NO_FLUSH = f"""
SELECT lane, seq FROM ({_CLAIM_LANES}) claimed,
     (SELECT set_config('synchronous_commit', 'off', true)) no_flush
"""

_LIST_PENDING_LANES = """
SELECT id, event_id, lane, kind, event_type, sender, txn_id, event, attempts, received_at
FROM (
    SELECT i.*, row_number() OVER (PARTITION BY i.lane ORDER BY i.id) AS n
    FROM inbox i
    WHERE i.lane = ANY($1::text[]) AND i.state = 'pending'
) ranked
WHERE n <= $2
ORDER BY lane, id
"""

_MARK_DONE = """
UPDATE inbox SET state = d.state, processed_at = now(), last_error = NULL
FROM unnest($1::bigint[], $2::text[]) AS d(id, state)
WHERE inbox.id = d.id
"""


_KINDS = {kind.value: kind for kind in EventKind}


def _event(r: asyncpg.Record) -> InboxEvent:
    return InboxEvent(
        id=r["id"],
        event_id=r["event_id"],
        lane=r["lane"],
        kind=_KINDS[r["kind"]],
        event_type=r["event_type"],
        sender=r["sender"],
        txn_id=r["txn_id"],
        event=r["event"],
        attempts=r["attempts"],
        received_at=r["received_at"],
    )


class InboxStore:
    """The inbox tables. Methods take the connection (and so the DB transaction) to act in."""

    async def insert_transaction(
        self,
        conn: asyncpg.Connection,
        txn_id: str,
        body_sha256: bytes,
        events: list[IncomingEvent],
        rejected: list[RejectedEvent],
        body_text: str | None = None,
        *,
        next_txn: int | None = None,
        gap_grace: float = 0.0,
    ) -> int | None:
        """Store a transaction's events and rejects atomically; return how many were new.

        Events without their own JSON are element ``index`` of ``body_text``'s ``events``.

        Events already in the inbox (same event id) and a transaction already received with the
        same body are skipped, so resends and concurrent duplicates store nothing twice.

        With ``next_txn`` (the transaction's number), the transaction-gap watch's highest
        number advances to it in the same statement, if it is the next one and no gap is past
        ``gap_grace`` seconds; otherwise nothing is stored and None is returned.
        """
        row = await conn.fetchrow(
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
            body_text,
            [e.index for e in events],
            next_txn,
            gap_grace,
        )
        return int(row["stored"]) if row["admitted"] else None

    async def claim_lanes(
        self, conn: asyncpg.Connection, limit: int, *, flush_commit: bool = True
    ) -> list[tuple[str, int]]:
        """Lock up to ``limit`` lanes due first that no other worker holds, for this DB
        transaction; return (lane, seq) pairs. Without ``flush_commit`` the transaction's
        commit returns before its WAL is on disk."""
        rows = await conn.fetch(_CLAIM_LANES if flush_commit else _CLAIM_LANES_NO_FLUSH, limit)
        return [(r["lane"], r["seq"]) for r in rows]

    async def list_pending_lanes(
        self, conn: asyncpg.Connection, lanes: list[str], per_lane: int
    ) -> dict[str, list[InboxEvent]]:
        """Up to ``per_lane`` pending events of each lane, in arrival order."""
        rows = await conn.fetch(_LIST_PENDING_LANES, lanes, per_lane)
        pending: dict[str, list[InboxEvent]] = {}
        for r in rows:
            pending.setdefault(r["lane"], []).append(_event(r))
        return pending

    async def mark_done(
        self, conn: asyncpg.Connection, ids: list[int], outcomes: list[Outcome]
    ) -> None:
        await conn.execute(_MARK_DONE, ids, list(outcomes))  # StrEnum members are text

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

    async def lock_lanes(self, conn: asyncpg.Connection, lanes: list[str]) -> None:
        """Row-lock lanes in name order, the order intake upserts them in, before changing
        them: two transactions taking the same lanes in different orders would deadlock."""
        await conn.execute(
            "SELECT 1 FROM inbox_lane WHERE lane = ANY($1::text[]) ORDER BY lane FOR UPDATE",
            lanes,
        )

    async def postpone_lanes(self, conn: asyncpg.Connection, delays: dict[str, float]) -> None:
        """Keep lanes, each due again after its delay in seconds (0: at the back of the queue)."""
        if not delays:
            return
        await conn.execute(
            """
            UPDATE inbox_lane l SET not_before = now() + make_interval(secs => d.secs)
            FROM unnest($1::text[], $2::float8[]) AS d(lane, secs)
            WHERE l.lane = d.lane
            """,
            list(delays),
            list(delays.values()),
        )

    async def release_lanes(
        self, conn: asyncpg.Connection, claimed: list[tuple[str, int]]
    ) -> list[str]:
        """Drop lanes with nothing pending that no intake touched since the claim; return the
        lanes that had to be kept."""
        if not claimed:
            return []
        rows = await conn.fetch(
            """
            WITH gone AS (
                DELETE FROM inbox_lane l
                USING unnest($1::text[], $2::bigint[]) AS c(lane, seq)
                WHERE l.lane = c.lane AND l.seq = c.seq
                  AND NOT EXISTS (SELECT 1 FROM inbox i
                                  WHERE i.lane = c.lane AND i.state = 'pending')
                RETURNING l.lane
            )
            SELECT c.lane FROM unnest($1::text[]) AS c(lane)
            WHERE c.lane NOT IN (SELECT lane FROM gone)
            """,
            [lane for lane, _ in claimed],
            [seq for _, seq in claimed],
        )
        return [r["lane"] for r in rows]

    async def seconds_until_due(self, conn: asyncpg.Connection) -> float | None:
        """Seconds until the next lane is due (0 if one is), None when no lane is waiting."""
        # (Not GREATEST in SQL: it skips NULLs, turning "no lane" into 0.)
        value = await conn.fetchval(
            "SELECT EXTRACT(EPOCH FROM min(not_before) - now()) FROM inbox_lane"
        )
        return None if value is None else max(float(value), 0.0)

    async def purge_finished(self, conn: asyncpg.Connection, keep_days: float, limit: int) -> int:
        """Delete up to ``limit`` finished events received more than ``keep_days`` ago, oldest
        first; return how many went. Pending events of any age stay; dead ones are kept in
        ``dead_letter``."""
        status = await conn.execute(
            f"""
            DELETE FROM inbox WHERE id IN (
                SELECT id FROM inbox
                WHERE id < {first_kept("inbox", "received_at")}
                  AND state <> 'pending' AND received_at < now() - make_interval(secs => $1)
                ORDER BY id LIMIT $2
            )
            """,
            keep_days * 86400,
            limit,
        )
        return int(status.split()[-1])

    async def purge_transactions(
        self, conn: asyncpg.Connection, keep_days: float, limit: int
    ) -> int:
        """Delete up to ``limit`` transaction records older than ``keep_days``."""
        status = await conn.execute(
            """
            DELETE FROM appservice_txn WHERE ctid IN (
                SELECT ctid FROM appservice_txn
                WHERE received_at < now() - make_interval(secs => $1)
                ORDER BY received_at LIMIT $2
            )
            """,
            keep_days * 86400,
            limit,
        )
        return int(status.split()[-1])

    async def count_pending(self, conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'"))
