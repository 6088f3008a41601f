"""Events as they travel from the homeserver's transactions through the inbox."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class EventRefused(Exception):
    """Raised by a handler for an event that no retry can make applicable (an absurd
    timestamp, say): the event is dead-lettered at once, with this message as its reason."""


class EventKind(enum.StrEnum):
    PDU = "pdu"
    EDU = "edu"


class Outcome(enum.StrEnum):
    """What processing made of an inbox event."""

    PROCESSED = "processed"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """A well-formed event of a transaction, ready to be stored in the inbox.

    Its JSON is either ``json``, or (``json`` None) element ``index`` of the transaction body's
    ``events`` list, which the database takes from the body itself: no re-serialising.
    """

    event_id: str
    lane: str
    kind: EventKind
    event_type: str
    sender: str | None
    json: str | None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """A malformed event of a transaction: dead-lettered with its reason, never dropped."""

    dedupe_key: str
    event_id: str | None
    room_id: str | None
    json: str
    error: str


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A stored inbox event awaiting processing."""

    id: int
    event_id: str
    lane: str
    kind: EventKind
    event_type: str
    sender: str | None
    txn_id: str
    event: dict[str, Any]
    attempts: int
    received_at: datetime

    @property
    def room_id(self) -> str | None:
        return self.lane or None
