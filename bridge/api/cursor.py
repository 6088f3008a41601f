"""Keyset cursors: where the next page of a list starts.

A cursor holds the sort key of the last row of a page (``paging.nextCursor``): the list's
letter (``c`` conversations, ``m`` messages, ``n`` notifications), the row's instant in
microseconds since 1970 and its id, as ``m1710072000000000_<32 hex digits>``. The next request
passes it back as ``?cursor=`` and the list continues after that row, at the cost of a first
page whatever the depth. Clients treat it as opaque; the query type declares its exact form,
so a cursor of another list, or a made-up one, is refused as any malformed parameter is. A
cursor carries no permission: the request's filters and the caller's access apply as always.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from msgspec import Meta

from ..listing import Position

CONVERSATIONS, MESSAGES, NOTIFICATIONS = "c", "m", "n"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


def _form(kind: str) -> Meta:
    return Meta(
        pattern=f"^{kind}-?[0-9]{{1,18}}_[0-9a-f]{{32}}$",
        description="paging.nextCursor of the previous page: the page after it",
    )


ConversationsCursor = Annotated[str, _form(CONVERSATIONS)]
MessagesCursor = Annotated[str, _form(MESSAGES)]
NotificationsCursor = Annotated[str, _form(NOTIFICATIONS)]


def encode(kind: str, position: Position) -> str:
    delta = position[0] - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{kind}{micros}_{position[1].hex}"


def decode(value: str) -> Position:
    """The position a cursor of the declared form holds; past the calendar's ends it stands
    at the end (no row lies beyond)."""
    micros, _, row_id = value[1:].partition("_")
    try:
        at = _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        at = _LAST if micros[0] != "-" else _FIRST
    return at, uuid.UUID(row_id)


def next_cursor(kind: str, more: bool, last: Position | None) -> str | None:
    """The cursor of the page after one ending at ``last``; None when no rows follow."""
    return encode(kind, last) if more and last is not None else None
