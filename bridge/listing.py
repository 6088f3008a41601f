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
