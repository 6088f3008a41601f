"""Why an outbox row was not sent, and what to do about it: the sender's exceptions, the kind
of each failure (retry it soon, later, or never), and the texts the dead-letter record and the
notice in the room give."""

from __future__ import annotations

import enum

from mautrix.errors import IntentError, MatrixRequestError

from ..inbox.processor import describe_error
from .actions import Invite, Join, Kick, Leave, Redact, Send, SetState
from .store import OutboxRow

#: The most of an error a room notice shows.
MAX_REPORTED_ERROR = 300


class InvalidPayload(Exception):
    """The row cannot be sent as written (unknown action, missing or mistyped field)."""


class Undeliverable(Exception):
    """The row can never be sent (what it depends on was given up on)."""


class NotReady(Exception):
    """What the row depends on is not there yet (its portal room, a referenced event)."""


class LeaseLost(Exception):
    """The lane's lease expired and another sender took the lane over."""


class FailureKind(enum.Enum):
    RATE_LIMITED = "rate limited"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


def matrix_error(exc: BaseException) -> MatrixRequestError | None:
    if isinstance(exc, MatrixRequestError):
        return exc
    if isinstance(exc, IntentError) and isinstance(exc.__cause__, MatrixRequestError):
        return exc.__cause__
    return None


def classify(exc: BaseException) -> FailureKind:
    error = matrix_error(exc)
    if error is not None:
        if error.http_status == 429:
            return FailureKind.RATE_LIMITED
        # 401: the as_token is refused, a configuration problem for every row, not this one.
        if 400 <= error.http_status < 500 and error.http_status not in (401, 408):
            return FailureKind.PERMANENT
        return FailureKind.TRANSIENT
    if isinstance(exc, InvalidPayload | Undeliverable | IntentError):
        return FailureKind.PERMANENT
    # Connection errors, timeouts, odd responses, NotReady, and anything unforeseen.
    return FailureKind.TRANSIENT


def error_text(exc: BaseException) -> str:
    error = matrix_error(exc)
    if error is not None:
        return f"HTTP {error.http_status} {error.errcode or ''}: {error.message or ''}".strip()
    if isinstance(exc, InvalidPayload | Undeliverable | NotReady):
        return f"{type(exc).__name__}: {exc}"
    return describe_error(exc)


def short_error(exc: BaseException) -> str:
    error = matrix_error(exc)
    if error is not None:
        text = f"{error.errcode or f'HTTP {error.http_status}'}: {error.message or 'refused'}"
    else:
        text = str(exc) or type(exc).__name__
    return text[:MAX_REPORTED_ERROR]


def describe(row: OutboxRow) -> str:
    """What the row meant to do, for the notice reporting its failure."""
    match row.action:
        case Send(event_type="m.room.message"):
            return f"deliver a message from {row.sender}"
        case Send(event_type=event_type):
            return f"deliver a {event_type} event from {row.sender}"
        case Redact():
            return f"redact an event for {row.sender}"
        case SetState(event_type=event_type):
            return f"update {event_type} in this room"
        case Invite(user_id=user_id):
            return f"invite {user_id}"
        case Join():
            return f"add {row.sender} to this room"
        case Leave():
            return f"remove {row.sender} from this room"
        case Kick(user_id=user_id):
            return f"remove {user_id} from this room"
    return f"do {row.kind} as {row.sender}"
