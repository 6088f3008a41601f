"""Transactions the homeserver skipped: detected, given a grace period, then resent.

Synapse numbers the transactions of an application service 1, 2, 3, ... A race between its
regular sender and its recoverer can leave one created but never sent while the service is up
(the recoverer declares the service recovered, the sender had seen it down); Synapse sends such
a transaction only the next time the service goes down. :class:`TxnGapWatch` sees the ids as
they arrive (called by the transaction handler before the body is read) and records every
skipped id. If one is still missing after ``grace`` seconds, the next transaction is answered
503: Synapse then marks the bridge down, and its recoverer sends the oldest unsent transaction
first (``_Recoverer.retry`` reads ``get_oldest_unsent_txn``), which is the skipped one, then
the refused one again.

Transaction ids are opaque in the spec: only ids made of digits are watched. Synapse on SQLite
starts its ids over after a restart: an id below the highest seen that was never seen, or id 1,
starts a new run rather than counting as late. :class:`GapChecker` is the periodic job that
marks gaps due and gives up on those a forced retry did not bring.
"""

from __future__ import annotations

import logging
import re

import asyncpg

from ..config import TxnGapConfig
from ..db.database import Database
from ..errors import Unavailable
from ..metrics import Metrics
from ..periodic import PeriodicJob
from .gap_store import GapStore

log = logging.getLogger(__name__)

_INTEGER_ID = re.compile(r"[0-9]{1,18}")
#: A jump of more ids than this starts a new run instead of opening that many gaps.
MAX_GAP = 100


class _GapParts:
    def __init__(
        self,
        db: Database,
        store: GapStore,
        config: TxnGapConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._config = config
        self._metrics = metrics


class TxnGapWatch(_GapParts):
    """Intake's side: notes each transaction id, refuses one when a gap is due.

    The common case, the number right after the highest seen with no gap due, is taken care
    of by the statement that stores the transaction (:meth:`watched_number` tells intake the
    number to advance to); :meth:`admit` is the full path for everything else.
    """

    @property
    def grace(self) -> float:
        return self._config.grace

    def watched_number(self, txn_id: str) -> int | None:
        """The transaction's number, if the watch follows it."""
        if not self._config.enabled or not _INTEGER_ID.fullmatch(txn_id):
            return None
        return int(txn_id)

    async def admit(self, txn_id: str) -> None:
        """Note ``txn_id``; raise :class:`Unavailable` (503) to make the homeserver resend
        transactions it skipped more than the grace period ago."""
        txn = self.watched_number(txn_id)
        if txn is None:
            return
        try:
            async with self._db.transaction() as conn:
                healed = await self._observe(conn, txn, txn_id)
                forced = await self._store.claim_due(conn, txn_id, self._config.grace)
        except Exception:  # the watch must never cost the homeserver a transaction
            log.exception("Transaction gap watch failed on %s; taking it in regardless", txn_id)
            return
        if healed is not None and self._metrics is not None:
            self._metrics.gaps_healed.labels(healed).inc()
        if forced:
            if self._metrics is not None:
                self._metrics.gap_retries.inc()
            log.warning(
                "Transaction(s) %s never arrived; refusing transaction %s so that the "
                "homeserver resends the oldest unsent first",
                ", ".join(map(str, forced)),
                txn_id,
            )
            raise Unavailable(
                f"transaction(s) {', '.join(map(str, forced))} never arrived: "
                "resend the oldest unsent transaction first"
            )

    async def _observe(self, conn: asyncpg.Connection, txn: int, txn_id: str) -> str | None:
        """Update the run's highest id and the gaps; return how a gap healed, if one did."""
        high = await self._store.lock_high(conn)
        if high is None or txn == high + 1:
            await self._store.set_high(conn, txn)
            return None
        if txn > high + 1:
            await self._store.set_high(conn, txn)
            if txn - high - 1 > MAX_GAP:
                log.warning(
                    "Transaction ids jumped from %d to %d: taken as a new run, not a gap",
                    high,
                    txn,
                )
                return None
            missing = list(range(high + 1, txn))
            added = await self._store.insert_gaps(conn, missing, txn_id)
            if added:
                if self._metrics is not None:
                    self._metrics.gaps_detected.inc(added)
                log.warning(
                    "Transaction %s arrived after %d: %s missing; waiting %g s for it",
                    txn_id,
                    high,
                    ", ".join(map(str, missing)),
                    self._config.grace,
                )
            return None
        was = await self._store.close_gap(conn, txn)
        if was is not None:
            how = "resent" if was == "forced" else "late"
            log.info("Missing transaction %s arrived (%s)", txn_id, how)
            return how
        if (txn == 1 and high > 1) or not await self._store.txn_seen(conn, txn_id):
            log.info("Transaction ids start over at %s (was at %d)", txn_id, high)
            await self._store.set_high(conn, txn)
        return None  # a resend of a transaction already seen


class GapChecker(_GapParts):
    """The periodic job: gaps past their grace become due, forced ones that did not heal are
    given up on (logged as errors; they stay listed on the status page)."""

    _job: PeriodicJob | None = None

    async def run_once(self) -> None:
        grace = self._config.grace
        async with self._db.transaction() as conn:
            due = await self._store.mark_due(conn, grace)
            lost = await self._store.give_up(conn, grace)
        if due:
            log.warning(
                "Transaction(s) %s still missing after %g s: the next transaction will be "
                "refused so that the homeserver resends them",
                ", ".join(map(str, due)),
                grace,
            )
        if lost:
            if self._metrics is not None:
                self._metrics.gaps_given_up.inc(len(lost))
            log.error(
                "Transaction(s) %s never arrived, even after a forced retry: their events "
                "may be missing (check the homeserver's application_services_txns)",
                ", ".join(map(str, lost)),
            )

    def start(self) -> None:
        if self._config.enabled and self._job is None:
            self._job = PeriodicJob(
                "transaction-gap check",
                self.run_once,
                self._config.check_interval,
                run_at_start=False,
            )
            self._job.start()

    async def stop(self) -> None:
        if self._job is not None:
            await self._job.stop()
            self._job = None
