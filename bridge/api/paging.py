"""``pageNumber`` / ``pageRowCount`` paging (and the notification service's ``page`` / ``limit``).

Every page also returns ``nextCursor`` (see :mod:`bridge.api.cursor`), the cheap way to page deep.

``pageNumber`` starts at 1 (the default); ``pageRowCount`` defaults to 25 and may be 1 to
:data:`MAX_ROWS`. ``pageNumber=0`` asks for every row: it returns at most :data:`MAX_ROWS` rows
(``totalRowCount`` tells whether there are more). Anything else is a 400.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from multidict import MultiMapping

from ..errors import BadRequest

DEFAULT_ROWS = 25
#: The most rows one response carries, also for ``pageNumber=0``.
MAX_ROWS = 1000
#: Beyond this page number the offset makes no sense for any list here.
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class Page:
    number: int  # 0: every row (up to MAX_ROWS)
    rows: int

    @property
    def limit(self) -> int:
        return MAX_ROWS if self.number == 0 else self.rows

    @property
    def offset(self) -> int:
        return 0 if self.number == 0 else (self.number - 1) * self.rows

    def describe(self, total: int) -> dict[str, int | str | None]:
        """The envelope's ``paging`` object."""
        size = self.limit
        return {
            "pageNumber": self.number,
            "pageRowCount": size,
            "totalRowCount": total,
            "pageCount": math.ceil(total / size) if total else 0,
        }

    def describe_keyset(
        self, total: int, next_cursor: str | None, *, by_cursor: bool
    ) -> dict[str, int | str | None]:
        """``paging`` of a list with cursors: ``nextCursor`` (null when no rows follow), and
        ``pageNumber`` null for a page a cursor asked for (its number is not known)."""
        paging = self.describe(total)
        if by_cursor:
            paging["pageNumber"] = None
        paging["nextCursor"] = next_cursor
        return paging


def single(query: MultiMapping[str], name: str) -> str | None:
    """A query parameter that may appear at most once."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} may be given only once")
    return values[0] if values else None


def _integer(query: MultiMapping[str], name: str, default: int, low: int, high: int) -> int:
    raw = single(query, name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise BadRequest(f"{name} must be a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def parse_page(
    query: MultiMapping[str],
    *,
    number_name: str = "pageNumber",
    rows_name: str = "pageRowCount",
    default_rows: int = DEFAULT_ROWS,
    allow_all: bool = True,
) -> Page:
    """The requested page, or 400."""
    number = _integer(query, number_name, 1, 0 if allow_all else 1, MAX_PAGE)
    rows = _integer(query, rows_name, default_rows, 1, MAX_ROWS)
    return Page(number, rows)
