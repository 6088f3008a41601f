"""All SQL of the outbox: enqueueing, lanes, delivery state, dead letters, portal look-ups.

Actions go in encoded by :mod:`.actions` (the row's ``action`` column is the action's kind, its
``payload`` the action) and come out decoded by the ``action`` column. JSON goes in as text cast
to ``jsonb`` and comes out as text, so these statements work on any connection, whether or not
it has the pool's JSON codecs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ...db.purge import first_kept
from .actions import OutboxAction, Unreadable, decode, encode, kind_of


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A Matrix side effect to enqueue: ``action``, done as ``sender``.

    ``lane`` is the ordering key: items of one lane are sent one after another, in the order
    they were enqueued; lanes go in parallel.
    """

    lane: str
    sender: str
    action: OutboxAction


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A pending outbox row as a worker sees it: its action, or why it cannot be read."""

    id: int
    lane: str
    sender: str
    kind: str
    action: OutboxAction | Unreadable
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SentResult:
    """The state and result of an outbox row another row refers to."""

    state: str
    result: dict[str, Any] | None


_ENQUEUE = """
WITH ins AS (
    INSERT INTO outbox (lane, sender, action, payload)
    VALUES ($1, $2, $3, $4::text::jsonb)
    RETURNING id, lane
), lanes AS (
    INSERT INTO outbox_lane AS l (lane)
    SELECT lane FROM ins
    ON CONFLICT (lane) DO UPDATE SET seq = l.seq + 1
)
SELECT id FROM ins
"""

# Rows get ids in input order (the SELECT's ORDER BY); lanes are upserted in a fixed order so
# that concurrent enqueuers touching the same lanes cannot deadlock.
_ENQUEUE_MANY = """
WITH ins AS (
    INSERT INTO outbox (lane, sender, action, payload)
    SELECT u.lane, u.sender, u.action, u.payload::jsonb
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
         WITH ORDINALITY AS u(lane, sender, action, payload, ord)
    ORDER BY u.ord
    RETURNING id, lane
), lanes AS (
    INSERT INTO outbox_lane AS l (lane)
    SELECT DISTINCT lane FROM ins ORDER BY lane
    ON CONFLICT (lane) DO UPDATE SET seq = l.seq + 1
)
SELECT id FROM ins ORDER BY id
"""

_LIST_PENDING = """
SELECT id, lane, sender, action, payload::text AS payload, attempts, created_at
FROM outbox
WHERE lane = $1 AND state = 'pending'
ORDER BY id
LIMIT $2
"""

_DEAD_LETTER = """
WITH moved AS (
    UPDATE outbox SET state = 'dead', attempts = $2, last_error = $3
    WHERE id = $1 AND state = 'pending'
    RETURNING id, lane, sender, action, payload
)
INSERT INTO dead_letter (source, dedupe_key, room_id, payload, error, attempts)
SELECT 'outbox', 'outbox:' || id, $4,
       jsonb_build_object('outbox_id', id, 'lane', lane, 'sender', sender,
                          'action', action, 'payload', payload),
       $3, $2
FROM moved
ON CONFLICT (dedupe_key) DO NOTHING
"""


def item_arrays(items: Sequence[OutboxItem]) -> list[list[str]]:
    """The 4 arrays (lane, sender, kind, encoded action) of ``enqueue_many``'s ``unnest``, in
    the items' order: how any statement that queues rows gets them."""
    return [
        [i.lane for i in items],
        [i.sender for i in items],
        [kind_of(i.action) for i in items],
        [encode(i.action).decode() for i in items],
    ]


class OutboxStore:
    """The outbox tables. Methods take the connection (and so the DB transaction) to act in."""

    async def purge_finished(self, conn: asyncpg.Connection, keep_days: float, limit: int) -> int:
        """Delete up to ``limit`` sent actions queued more than ``keep_days`` ago, oldest first;
        return how many went. Dead ones stay: the bridge checks for them before retrying."""
        status = await conn.execute(
            f"""
            DELETE FROM outbox WHERE id IN (
                SELECT id FROM outbox
                WHERE id < {first_kept("outbox", "created_at")}
                  AND state = 'sent' AND created_at < now() - make_interval(secs => $1)
                ORDER BY id LIMIT $2
            )
            """,
            keep_days * 86400,
            limit,
        )
        return int(status.split()[-1])

    async def enqueue(
        self,
        conn: asyncpg.Connection,
        lane: str,
        sender: str,
        action: OutboxAction,
    ) -> int:
        """Add one row to the end of ``lane`` in the caller's DB transaction; return its id."""
        row_id = await conn.fetchval(
            _ENQUEUE, lane, sender, kind_of(action), encode(action).decode()
        )
        return int(row_id)

    async def enqueue_many(
        self, conn: asyncpg.Connection, items: Sequence[OutboxItem]
    ) -> list[int]:
        """Add rows in the given order (each to the end of its lane); return their ids."""
        if not items:
            return []
        rows = await conn.fetch(
            _ENQUEUE_MANY,
            *item_arrays(items),
        )
        return [int(r["id"]) for r in rows]

    async def list_pending(
        self, conn: asyncpg.Connection, lane: str, limit: int
    ) -> list[OutboxRow]:
        """The lane's pending rows in enqueue order."""
        rows = await conn.fetch(_LIST_PENDING, lane, limit)
        return [
            OutboxRow(
                id=r["id"],
                lane=r["lane"],
                sender=r["sender"],
                kind=r["action"],
                action=decode(r["action"], r["payload"]),
                attempts=r["attempts"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    async def mark_sent(
        self, conn: asyncpg.Connection, row_id: int, result: dict[str, Any]
    ) -> None:
        """Record that the homeserver accepted the row, with what it answered."""
        await conn.execute(
            """
            UPDATE outbox SET state = 'sent', result = $2::text::jsonb,
                              sent_at = clock_timestamp(), last_error = NULL
            WHERE id = $1
            """,
            row_id,
            json.dumps(result),
        )

    async def record_failure(
        self, conn: asyncpg.Connection, row_id: int, attempts: int, error: str
    ) -> None:
        """Keep the row pending with its attempt count and last error."""
        await conn.execute(
            "UPDATE outbox SET attempts = $2, last_error = $3 WHERE id = $1",
            row_id,
            attempts,
            error,
        )

    async def dead_letter(
        self,
        conn: asyncpg.Connection,
        row_id: int,
        attempts: int,
        error: str,
        room_id: str | None,
    ) -> None:
        """Give up on a row: mark it dead and copy it to the dead letters; its lane goes on."""
        await conn.execute(_DEAD_LETTER, row_id, attempts, error, room_id)

    async def seconds_until_due(self, conn: asyncpg.Connection) -> float | None:
        """Seconds until the next lane is due (0 if one is), None when no lane is waiting."""
        # Not GREATEST(0, ...) in SQL: it skips NULLs, and would make "no lane" read as "due".
        value = await conn.fetchval(
            "SELECT EXTRACT(EPOCH FROM min(not_before) - now()) FROM outbox_lane"
        )
        return None if value is None else max(float(value), 0.0)

    async def get_results(
        self, conn: asyncpg.Connection, row_ids: Sequence[int]
    ) -> dict[int, SentResult]:
        """State and result of the given rows (missing ids are left out)."""
        rows = await conn.fetch(
            "SELECT id, state, result::text AS result FROM outbox WHERE id = ANY($1::bigint[])",
            list(row_ids),
        )
        return {
            r["id"]: SentResult(
                r["state"], None if r["result"] is None else json.loads(r["result"])
            )
            for r in rows
        }

    async def has_dead_row(self, conn: asyncpg.Connection, lane: str, action: str) -> bool:
        """Whether a row of ``action`` in ``lane`` was given up on."""
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE lane = $1 AND action = $2"
                " AND state = 'dead')",
                lane,
                action,
            )
        )


async def find_message_send(conn: asyncpg.Connection, message_id: str) -> int | None:
    """The outbox row that sends (or sent) a network message into Matrix, if any."""
    value = await conn.fetchval(
        """
        SELECT id FROM outbox
        WHERE action = 'send' AND payload->>'message_id' = $1
        ORDER BY id LIMIT 1
        """,
        message_id,
    )
    return None if value is None else int(value)
