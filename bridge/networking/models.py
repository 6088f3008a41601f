from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    id: uuid.UUID
    sender_id: uuid.UUID
    receiver_id: uuid.UUID
    status: RequestStatus
    message: str | None
    first_requested_at: datetime
    sent_at: datetime
    request_counter: int
    responded_at: datetime | None
    room_id: str | None
    #: When a party deleted it (the reference's soft delete); None while it is active.
    deleted_at: datetime | None = None

    def seen_from(self, user_id: uuid.UUID) -> str:
        """The Symphony-style status as ``user_id`` sees it."""
        if self.status is RequestStatus.PENDING:
            return "PENDING_OUTGOING" if user_id == self.sender_id else "PENDING_INCOMING"
        return self.status.value.upper()


@dataclass(frozen=True, slots=True)
class Connection:
    id: uuid.UUID
    user_low: uuid.UUID
    user_high: uuid.UUID
    connected_since: datetime

    def other(self, user_id: uuid.UUID) -> uuid.UUID:
        return self.user_high if user_id == self.user_low else self.user_low


@dataclass(frozen=True, kw_only=True)
class RequestFilter:
    """What a list of connection requests keeps (built once from the REST query and handed
    through to the store); None: no condition."""

    statuses: Sequence[RequestStatus] | None = None
