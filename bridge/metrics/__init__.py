"""Prometheus metrics: the instruments (this module), what is read from the database at
scrape time (:mod:`.scrape`), the HTTP hooks (:mod:`.http`) and the listener (:mod:`.server`).

Every application builds its own :class:`Metrics` on its own registry; components take it as
an optional argument and record through its methods. No label takes a value from outside
without a bound (no room, user or event ids; errcodes are checked against a pattern and
capped).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Latency buckets in seconds, from a fast local statement to the homeserver's 60 s timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Buckets for the lag of events (received to processed), up to an hour.
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)

_ERRCODE_RE = re.compile(r"M_[A-Z0-9_]{1,40}")
_MAX_ERRCODES = 32


class _Received(Protocol):
    @property
    def received_at(self) -> datetime: ...


class Metrics:
    """The bridge's instruments on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._errcodes: set[str] = set()
        self._last_ping: tuple[float, float] | None = None
        self.transactions = Counter(
            "bridge_appservice_transactions",
            "Transactions received from the homeserver, by result",
            ["result"],
            registry=r,
        )
        self.events = Counter(
            "bridge_appservice_events",
            "Events received in transactions: stored, duplicate (already in the inbox) or "
            "rejected (malformed, dead-lettered)",
            ["result"],
            registry=r,
        )
        self.intake_seconds = Histogram(
            "bridge_appservice_transaction_duration_seconds",
            "Time from a transaction's arrival to its answer",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_seconds = Histogram(
            "bridge_inbox_batch_duration_seconds",
            "Time an inbox worker took for one batch (one DB transaction)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_lag_seconds = Histogram(
            "bridge_inbox_event_lag_seconds",
            "Time from an event's arrival to the end of its processing",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "bridge_dead_letters",
            "Events and actions moved to the dead letters, by source and reason class",
            ["source", "reason"],
            registry=r,
        )
        self.outbox_sends = Counter(
            "bridge_outbox_sends",
            "Outbox actions tried on the homeserver, by result and Matrix errcode",
            ["result", "errcode"],
            registry=r,
        )
        self.rate_limited_seconds = Counter(
            "bridge_outbox_rate_limited_seconds",
            "Seconds outbox lanes were told to wait by the homeserver's 429 answers",
            registry=r,
        )
        self.homeserver_seconds = Histogram(
            "bridge_homeserver_request_duration_seconds",
            "Requests to the homeserver, by method and outcome (2xx, 4xx, 5xx, error)",
            ["method", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.homeserver_ping_seconds = Gauge(
            "bridge_homeserver_ping_seconds",
            "Round trip of the last appservice ping through the homeserver",
            registry=r,
        )
        self.homeserver_ping_timestamp = Gauge(
            "bridge_homeserver_last_ping_timestamp_seconds",
            "When the last appservice ping round trip succeeded (Unix time)",
            registry=r,
        )
        self.rest_requests = Counter(
            "bridge_rest_requests",
            "REST API requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.rest_seconds = Histogram(
            "bridge_rest_request_duration_seconds",
            "REST API request latency by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gaps_detected = Counter(
            "bridge_appservice_transaction_gaps_detected",
            "Transaction ids the homeserver skipped",
            registry=r,
        )
        self.gaps_healed = Counter(
            "bridge_appservice_transaction_gaps_healed",
            "Skipped transaction ids that arrived: late (within the grace period) or resent "
            "after a forced retry",
            ["how"],
            registry=r,
        )
        self.gaps_given_up = Counter(
            "bridge_appservice_transaction_gaps_given_up",
            "Skipped transaction ids still missing after a forced retry",
            registry=r,
        )
        self.gap_retries = Counter(
            "bridge_appservice_transaction_gap_retries",
            "Transactions refused (503) to make the homeserver resend a skipped one",
            registry=r,
        )

    # --- recording helpers ------------------------------------------------------------------

    def errcode_label(self, errcode: str | None) -> str:
        """A bounded label for a Matrix errcode: '' for none, 'other' past the cap."""
        if not errcode:
            return ""
        if not _ERRCODE_RE.fullmatch(errcode):
            return "other"
        if errcode not in self._errcodes:
            if len(self._errcodes) >= _MAX_ERRCODES:
                return "other"
            self._errcodes.add(errcode)
        return errcode

    def transaction_stored(self, events: int, new: int, rejected: int) -> None:
        self.events.labels("stored").inc(new)
        self.events.labels("duplicate").inc(max(events - new, 0))
        self.events.labels("rejected").inc(rejected)

    def observe_batch(
        self,
        started: float,
        lanes: Mapping[str, Sequence[_Received]],
        waiting: Mapping[str, float],
    ) -> None:
        """A processed batch: its duration, and the lag of the events of lanes that finished
        (``started``: ``time.perf_counter()`` at its start; ``waiting``: lanes retried later)."""
        self.processing_seconds.observe(time.perf_counter() - started)
        now = datetime.now(UTC)
        for lane, events in lanes.items():
            if lane in waiting:
                continue
            for event in events:
                self.event_lag_seconds.observe(max((now - event.received_at).total_seconds(), 0))

    def outbox_result(self, result: str, errcode: str | None = None) -> None:
        self.outbox_sends.labels(result, self.errcode_label(errcode)).inc()

    def ping_succeeded(self, round_trip_ms: float) -> None:
        self._last_ping = (time.time(), round_trip_ms / 1000)
        self.homeserver_ping_seconds.set(self._last_ping[1])
        self.homeserver_ping_timestamp.set(self._last_ping[0])

    def rest_by_class(self) -> dict[str, float]:
        """REST requests counted by this process, by status class ('2xx', '4xx', ...)."""
        counts: dict[str, float] = {}
        for metric in self.rest_requests.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    cls = f"{sample.labels.get('status', '0')[:1]}xx"
                    counts[cls] = counts.get(cls, 0.0) + sample.value
        return counts

    def last_ping(self) -> tuple[float, float] | None:
        """(Unix time, round trip in seconds) of the last successful ping, if any."""
        return self._last_ping
