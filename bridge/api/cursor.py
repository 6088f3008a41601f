"""Keyset cursors: where the next page of a list starts, opaque to clients.

A cursor holds the sort key of the last row of a page (``paging.nextCursor``); the next request
passes it back as ``?cursor=`` and the list continues after that row, at the cost of a first
page whatever the depth (``pageNumber`` skips rows, so deep pages cost their depth). A cursor
is bound to its list and order; it carries no permission: the request's filters and the
caller's access apply as always.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from multidict import MultiMapping

from ..errors import BadRequest
from .paging import single

CURSOR = "cursor"

#: A position in a list: the sort key of a row, ``(instant, id)``.
Position = tuple[datetime, uuid.UUID]


def encode(kind: str, position: Position) -> str:
    raw = f"{kind}|{position[0].isoformat()}|{position[1]}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(kind: str, value: str) -> Position:
    """The position ``value`` holds, or 400 unless it is a cursor of list ``kind``."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        found, instant, row_id = raw.split("|")
        at = datetime.fromisoformat(instant)
        if found != kind or at.tzinfo is None:
            raise ValueError(found)
        return at, uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadRequest(f"{CURSOR} is not a cursor of this list") from exc


def parse_cursor(query: MultiMapping[str], kind: str, *, number_name: str) -> Position | None:
    """The ``cursor`` query parameter, which replaces the page number."""
    value = single(query, CURSOR)
    if value is None:
        return None
    if number_name in query:
        raise BadRequest(f"give either {CURSOR} or {number_name}, not both")
    return decode(kind, value)


def next_cursor(kind: str, more: bool, last: Position | None) -> str | None:
    """The cursor of the page after one ending at ``last``; None when no rows follow."""
    return encode(kind, last) if more and last is not None else None
