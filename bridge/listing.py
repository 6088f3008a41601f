"""What a paged list returns, and where a keyset cursor stands in one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

#: A keyset position: the sort key of a row, ``(instant, id)``.
Position = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, the total matching and whether rows follow it."""

    rows: list[T]
    total: int
    more: bool


@dataclass(frozen=True, kw_only=True)
class Window:
    """Which rows of a list one page holds: at most ``limit``, past the keyset position
    ``after`` (a cursor's) when there is one, and ``offset`` rows further in."""

    limit: int
    offset: int = 0
    after: Position | None = None
