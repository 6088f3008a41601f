"""All SQL of the dead letters as operators see them: listing, replay, drop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    source: str  # 'intake' (malformed), 'inbox' (processing failed), 'outbox' (sending failed)
    event_id: str | None
    room_id: str | None
    txn_id: str | None
    payload: Any
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None
    #: State of what was replayed now: the inbox event's or the outbox row's (None: not there).
    current_state: str | None


_SELECT = """
SELECT d.id, d.source, d.event_id, d.room_id, d.txn_id, d.payload::text AS payload, d.error,
       d.attempts, d.created_at, d.replayed_at,
       CASE d.source
           WHEN 'outbox' THEN (SELECT o.state FROM outbox o
                               WHERE o.id = (d.payload->>'outbox_id')::bigint)
           ELSE (SELECT i.state FROM inbox i WHERE i.event_id = d.event_id)
       END AS current_state
FROM dead_letter d
"""


# A lane (of the inbox_lane or outbox_lane table) due now, bumped so a worker's claim sees it.
_DUE_NOW = """
INSERT INTO {table} AS l (lane) VALUES ($1)
ON CONFLICT (lane) DO UPDATE SET seq = l.seq + 1, not_before = now()
"""


def _letter(r: asyncpg.Record) -> DeadLetter:
    values = dict(r)
    values["payload"] = json.loads(values["payload"])
    return DeadLetter(**values)


class DeadLetterStore:
    """Methods take the connection (and so the DB transaction) to act in."""

    async def list_letters(
        self,
        conn: asyncpg.Connection,
        *,
        since: datetime | None = None,
        limit: int = 100,
        waiting_only: bool = False,
    ) -> list[DeadLetter]:
        """Newest first; ``waiting_only`` leaves out those already replayed."""
        rows = await conn.fetch(
            _SELECT
            + """
            WHERE ($1::timestamptz IS NULL OR d.created_at >= $1)
              AND (NOT $3 OR d.replayed_at IS NULL)
            ORDER BY d.id DESC LIMIT $2
            """,
            since,
            limit,
            waiting_only,
        )
        return [_letter(r) for r in rows]

    async def get_letter(self, conn: asyncpg.Connection, letter_id: int) -> DeadLetter | None:
        row = await conn.fetchrow(_SELECT + " WHERE d.id = $1", letter_id)
        return None if row is None else _letter(row)

    async def list_waiting_ids(self, conn: asyncpg.Connection) -> list[int]:
        rows = await conn.fetch("SELECT id FROM dead_letter WHERE replayed_at IS NULL ORDER BY id")
        return [int(r["id"]) for r in rows]

    async def claim_replay(self, conn: asyncpg.Connection, letter_id: int) -> bool:
        """Mark a dead letter replayed, once: False when it is gone or was replayed before.

        The row stays locked until the caller's DB transaction ends, so concurrent replays of
        the same letter wait and then find it replayed."""
        status = await conn.execute(
            "UPDATE dead_letter SET replayed_at = now() WHERE id = $1 AND replayed_at IS NULL",
            letter_id,
        )
        return bool(status == "UPDATE 1")

    async def requeue_inbox_event(
        self,
        conn: asyncpg.Connection,
        letter: DeadLetter,
        kind: str,
        event_type: str,
        sender: str | None,
    ) -> bool:
        """Put a dead inbox event back to pending (re-inserted from the dead letter if
        retention deleted it), in its lane; False when it is not dead any more."""
        lane = letter.room_id or ""
        requeued = await conn.fetchval(
            """
            INSERT INTO inbox (event_id, lane, kind, event_type, sender, txn_id, event)
            VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)
            ON CONFLICT (event_id) DO UPDATE
                SET state = 'pending', attempts = 0, last_error = NULL, processed_at = NULL
                WHERE inbox.state = 'dead'
            RETURNING lane
            """,
            letter.event_id,
            lane,
            kind,
            event_type,
            sender,
            letter.txn_id or "replay",
            json.dumps(letter.payload),
        )
        if requeued is None:
            return False
        await conn.execute(_DUE_NOW.format(table="inbox_lane"), requeued)
        return True

    async def requeue_outbox_row(self, conn: asyncpg.Connection, outbox_id: int) -> bool:
        """Put a dead outbox row back to pending with fresh attempts; False if not dead."""
        lane = await conn.fetchval(
            """
            UPDATE outbox SET state = 'pending', attempts = 0, last_error = NULL
            WHERE id = $1 AND state = 'dead'
            RETURNING lane
            """,
            outbox_id,
        )
        if lane is None:
            return False
        await conn.execute(_DUE_NOW.format(table="outbox_lane"), lane)
        return True

    async def delete_letters(self, conn: asyncpg.Connection, ids: list[int]) -> list[int]:
        """Delete dead letters; return the ids that existed."""
        rows = await conn.fetch(
            "DELETE FROM dead_letter WHERE id = ANY($1::bigint[]) RETURNING id", ids
        )
        return sorted(int(r["id"]) for r in rows)
