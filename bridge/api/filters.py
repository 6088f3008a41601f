"""List filters from the query string, as the seed describes them.

Every filter takes one value (``?x=a``), repeated values (``?x=a&x=b``: any of them) and
``null`` (``?x=null``: no value; on a column that always has one this matches nothing). The
forms each filter takes are declared by its query type (:mod:`bridge.api.fields`); a value
of another form was refused before it gets here.

Date filters also take a date (``2024-01-15``: that UTC day, 1900 to 2999), an instant
(``2024-01-15T10:00:00Z``: exactly then; UTC without an offset) and the seed's shortcuts,
which it names without defining; this API reads them as:

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from msgspec import UNSET, UnsetType

from ..errors import BadRequest
from .envelope import AppliedFilter

T = TypeVar("T")
NULL = "null"
_INSTANT = timedelta(microseconds=1)

#: The values of a filter as decoded from the query string (each of the declared form).
Given = Sequence[str] | UnsetType


@dataclass(frozen=True)
class DateFilter:
    periods: list[tuple[datetime, datetime]] | None  # half-open; None: unrestricted
    since: datetime | None
    until: datetime | None
    with_null: bool


class Filters:
    """Turns a request's filter values into what the queries take, and remembers them for the
    envelope's ``filters``. The values already have the form the query type declares."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self._now = now or datetime.now(UTC)
        self.applied: list[AppliedFilter] = []

    def _raw(self, name: str, given: Given) -> list[str]:
        if given is UNSET or not given:
            return []
        values = list(given)
        self.applied.append(AppliedFilter(name, values))
        return values

    def _values(
        self, name: str, given: Given, parse: Callable[[str], T]
    ) -> tuple[list[T] | None, bool]:
        raw = self._raw(name, given)
        if not raw:
            return None, False
        with_null = NULL in raw
        return [parse(v) for v in raw if v != NULL], with_null

    def ids(self, name: str, given: Given) -> list[uuid.UUID] | None:
        """An id filter on a column that is never NULL (``null`` alone matches nothing)."""
        values, _ = self._values(name, given, uuid.UUID)
        return values

    def ids_with_null(self, name: str, given: Given) -> tuple[list[uuid.UUID] | None, bool]:
        return self._values(name, given, uuid.UUID)

    def choices(self, name: str, given: Given, allowed: dict[str, T]) -> list[T] | None:
        """An enum filter on a column that is never NULL."""
        values, _ = self._values(name, given, allowed.__getitem__)
        return values

    def bools(self, name: str, given: Given) -> list[bool] | None:
        return self.choices(name, given, {"true": True, "false": False})

    def dates(self, name: str, given: Given) -> DateFilter | None:
        raw = self._raw(name, given)
        if not raw:
            return None
        periods: list[tuple[datetime, datetime]] = []
        since: datetime | None = None
        until: datetime | None = None
        with_null = False
        restricted = False
        for value in raw:
            if value == NULL:
                with_null = True
            elif value.startswith("$leq-"):
                bound = _parse_point(name, value[5:], end_of_day=True)
                until = bound if until is None else min(until, bound)
            elif value.startswith("$lin-"):
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
    match value:
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
