"""List filters from the query string, as the reference describes them.

Every filter takes one value (``?x=a``), repeated values (``?x=a&x=b``: any of them) and
``null`` (``?x=null``: no value; on a column that always has one this matches nothing).

Date filters also take a date (``2024-01-15``: that UTC day), an instant
(``2024-01-15T10:00:00Z``: exactly then) and the reference's shortcuts, which it names without
defining; this API reads them as:

==================  =============================================================
``$today``          the current UTC day
``$ltoday``         the last 24 hours
``$week``           the current ISO week (from Monday 00:00 UTC)
``$lweek``          the last 7 days
``$month``          the current calendar month (UTC)
``$leq-<date>``     at or before ``<date>`` (a date: through the end of that day) — the max
``$lin-<date>``     at or after ``<date>`` (a date: from the start of that day) — the min
==================  =============================================================

Days, instants and periods are alternatives (any of them matches); ``$leq-`` and ``$lin-`` are
bounds that every match must respect, so ``?sentAt=$lin-2024-01-01&sentAt=$leq-2024-01-31`` is
January 2024.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from multidict import MultiMapping

from ..errors import BadRequest
from ..ids import parse_uuid

T = TypeVar("T")
NULL = "null"
MAX_VALUES = 100
_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class DateFilter:
    periods: list[tuple[datetime, datetime]] | None  # half-open; None: unrestricted
    since: datetime | None
    until: datetime | None
    with_null: bool


class Filters:
    """Parses a request's filters and remembers them for the envelope's ``filters``."""

    def __init__(self, query: MultiMapping[str], *, now: datetime | None = None) -> None:
        self._query = query
        self._now = now or datetime.now(UTC)
        self.applied: list[dict[str, Any]] = []

    def _raw(self, name: str) -> list[str]:
        values = self._query.getall(name, [])
        if len(values) > MAX_VALUES:
            raise BadRequest(f"{name}: at most {MAX_VALUES} values")
        if values:
            self.applied.append({"name": name, "values": list(values)})
        return values

    def _values(self, name: str, parse: Callable[[str], T]) -> tuple[list[T] | None, bool]:
        raw = self._raw(name)
        if not raw:
            return None, False
        with_null = any(v.lower() == NULL for v in raw)
        return [parse(v) for v in raw if v.lower() != NULL], with_null

    def ids(self, name: str) -> list[uuid.UUID] | None:
        """An id filter on a column that is never NULL (``null`` alone matches nothing)."""
        values, _ = self._values(name, lambda v: parse_uuid(v, name))
        return values

    def ids_with_null(self, name: str) -> tuple[list[uuid.UUID] | None, bool]:
        return self._values(name, lambda v: parse_uuid(v, name))

    def choices(self, name: str, allowed: dict[str, T]) -> list[T] | None:
        """An enum filter (case-insensitive) on a column that is never NULL."""

        def parse(value: str) -> T:
            try:
                return allowed[value.lower()]
            except KeyError:
                raise BadRequest(
                    f"{name} must be one of {', '.join(sorted(allowed))} or null"
                ) from None

        values, _ = self._values(name, parse)
        return values

    def bools(self, name: str) -> list[bool] | None:
        return self.choices(name, {"true": True, "false": False})

    def dates(self, name: str) -> DateFilter | None:
        raw = self._raw(name)
        if not raw:
            return None
        periods: list[tuple[datetime, datetime]] = []
        since: datetime | None = None
        until: datetime | None = None
        with_null = False
        restricted = False
        for value in raw:
            lowered = value.lower()
            if lowered == NULL:
                with_null = True
            elif lowered.startswith("$leq-"):
                bound = _parse_point(name, value[5:], end_of_day=True)
                until = bound if until is None else min(until, bound)
            elif lowered.startswith("$lin-"):
                bound = _parse_point(name, value[5:], end_of_day=False)
                since = bound if since is None else max(since, bound)
            else:
                periods.append(_period(name, value, self._now))
                restricted = True
        return DateFilter(periods if restricted else None, since, until, with_null)


def _parse_when(name: str, value: str) -> datetime | date:
    try:
        if "T" in value:
            # An unencoded "+" in a query string arrives as a space.
            moment = datetime.fromisoformat(value.replace(" ", "+"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{name}: {value!r} is not a date (YYYY-MM-DD), an ISO 8601 instant, null or one of "
            "$today, $ltoday, $week, $lweek, $month, $leq-<date>, $lin-<date>"
        ) from None


def _day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _parse_point(name: str, value: str, *, end_of_day: bool) -> datetime:
    when = _parse_when(name, value)
    if isinstance(when, datetime):
        return when
    start = _day(when)
    return start + timedelta(days=1) - _INSTANT if end_of_day else start


def _period(name: str, value: str, now: datetime) -> tuple[datetime, datetime]:
    today = _day(now.astimezone(UTC).date())
    match value.lower():
        case "$today":
            return today, today + timedelta(days=1)
        case "$ltoday":
            return now - timedelta(days=1), now + _INSTANT
        case "$week":
            monday = today - timedelta(days=today.weekday())
            return monday, monday + timedelta(days=7)
        case "$lweek":
            return now - timedelta(days=7), now + _INSTANT
        case "$month":
            first = today.replace(day=1)
            following = (first + timedelta(days=32)).replace(day=1)
            return first, following
    when = _parse_when(name, value)
    if isinstance(when, datetime):
        return when, when + _INSTANT
    return _day(when), _day(when) + timedelta(days=1)
