"""All SQL of outbox lane leases: claim, renew, hand back.

A lane is leased, not locked: the claim is one short statement, the holder talks to the
homeserver outside any DB transaction, and proves it still holds the lane (by the claim's
``lease`` number) in each short transaction that records a result. While leased, a lane's
``not_before`` is the lease's expiry: a lane whose holder died or stalled becomes due again
when it expires, and the next claim takes it over.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class LaneClaim:
    """A claimed lane: its name, the lease number proving the claim, the lane's ``seq`` at the
    claim (to tell whether rows were enqueued since), and who held it before if its lease
    expired (None for a free lane)."""

    lane: str
    lease: int
    seq: int
    taken_from: str | None


_CLAIM = """
WITH candidate AS (
    SELECT lane, lease_owner FROM outbox_lane
    WHERE not_before <= now()
    ORDER BY not_before
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox_lane l
SET lease = nextval('outbox_lane_lease_seq'), lease_owner = $1,
    not_before = now() + make_interval(secs => $2)
FROM candidate c
WHERE l.lane = c.lane
RETURNING l.lane, l.lease, l.seq, c.lease_owner AS taken_from
"""

_RELEASE = """
WITH gone AS (
    DELETE FROM outbox_lane
    WHERE lane = $1 AND lease = $2 AND seq = $3
      AND NOT EXISTS (SELECT 1 FROM outbox WHERE lane = $1 AND state = 'pending')
    RETURNING lane
)
UPDATE outbox_lane
SET lease = NULL, lease_owner = NULL, not_before = now()
WHERE lane = $1 AND lease = $2 AND NOT EXISTS (SELECT 1 FROM gone)
"""


class OutboxLaneStore:
    """Leases on ``outbox_lane``. Methods take the connection (and transaction) to act in."""

    async def claim(self, conn: asyncpg.Connection, owner: str, seconds: float) -> LaneClaim | None:
        """Lease the lane due first (free, or its lease expired) to ``owner`` for ``seconds``."""
        row = await conn.fetchrow(_CLAIM, owner, seconds)
        if row is None:
            return None
        return LaneClaim(row["lane"], row["lease"], row["seq"], row["taken_from"])

    async def renew(self, conn: asyncpg.Connection, lane: str, lease: int, seconds: float) -> bool:
        """Extend the lease to ``seconds`` from now; False if it is no longer this claim's.

        In a transaction, it also row-locks the lane until commit: what the transaction
        records cannot race a takeover."""
        status = await conn.execute(
            "UPDATE outbox_lane SET not_before = now() + make_interval(secs => $3)"
            " WHERE lane = $1 AND lease = $2",
            lane,
            lease,
            seconds,
        )
        return bool(status == "UPDATE 1")

    async def postpone(
        self, conn: asyncpg.Connection, lane: str, lease: int, seconds: float
    ) -> bool:
        """Hand the lane back, due again after ``seconds`` (0: at the back of the queue)."""
        status = await conn.execute(
            "UPDATE outbox_lane SET lease = NULL, lease_owner = NULL,"
            " not_before = now() + make_interval(secs => $3)"
            " WHERE lane = $1 AND lease = $2",
            lane,
            lease,
            seconds,
        )
        return bool(status == "UPDATE 1")

    async def release(self, conn: asyncpg.Connection, lane: str, lease: int, seq: int) -> None:
        """Hand the lane back: dropped if nothing is pending and nothing was enqueued since
        the claim, else due again at once."""
        await conn.execute(_RELEASE, lane, lease, seq)
