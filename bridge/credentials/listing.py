"""The list call's ``limit``, ``start_after``, ``order`` and ``filter`` parameters, parsed.

``order`` is ``field`` or ``field[asc|desc]``, repeatable, applied in the order given; the name
always ends the order (ties broken in the first key's direction), so every page boundary is
exact. ``filter`` is Synqly's ``field[op]value``, repeatable and ANDed; ``in`` takes values
separated by commas, ``like`` a pattern with ``%`` and ``_`` (case-insensitive), and ``expires``
compares with ``null`` under ``eq`` and ``ne``. Every mistake is a 400 naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import BadRequest
from .models import CONFIG_TYPES

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
ORDER_FIELDS = ("name", "created_at", "updated_at", "expires")
FILTER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "like", "in")
TEXT_FIELDS = ("name", "fullname", "config.type", "managed")
TIME_FIELDS = ("expires", "created_at")
_CHOICES = {"config.type": CONFIG_TYPES, "managed": ("Managed", "Unmanaged")}
_ORDER_RE = re.compile(r"(?P<field>[a-z_.]+)(?:\[(?P<dir>asc|desc)\])?")
_FILTER_RE = re.compile(r"(?P<field>[a-z_.]+)\[(?P<op>[a-z]+)\](?P<value>.*)", re.DOTALL)

FilterValue = str | datetime | list[str] | list[datetime] | None


@dataclass(frozen=True, kw_only=True)
class ListParameters:
    """The list call's parameters as given: built once from the request (or a command) and
    read by :func:`parse_list_query` once the account is known to be the caller's to see."""

    limit: int | None = None
    start_after: str | None = None
    #: ``order`` values, repeated.
    order: Sequence[str] = ()
    #: ``filter`` values, repeated (ANDed).
    filters: Sequence[str] = ()


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: FilterValue


@dataclass(frozen=True)
class ListQuery:
    limit: int
    start_after: str | None
    order: tuple[OrderKey, ...]
    filters: tuple[Filter, ...]


def parse_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def parse_order(values: Sequence[str]) -> tuple[OrderKey, ...]:
    keys: list[OrderKey] = []
    for raw in values:
        match = _ORDER_RE.fullmatch(raw)
        if match is None or match["field"] not in ORDER_FIELDS:
            raise BadRequest(
                f"order {raw!r}: must be one of {', '.join(ORDER_FIELDS)}, "
                "optionally followed by [asc] or [desc]"
            )
        if any(k.field == match["field"] for k in keys):
            raise BadRequest(f"order {raw!r}: {match['field']} is already ordered by")
        keys.append(OrderKey(match["field"], match["dir"] == "desc"))
    if not keys:
        keys.append(OrderKey("name", False))
    if keys[-1].field != "name" and all(k.field != "name" for k in keys):
        keys.append(OrderKey("name", keys[0].descending))
    return tuple(keys)


def _instant(raw: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"filter {where}: {raw!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(field: str, raw: str, where: str, op: str) -> str:
    choices = _CHOICES.get(field)
    if choices is not None and op != "like" and raw not in choices:
        raise BadRequest(f"filter {where}: {field} is one of {', '.join(choices)}")
    return raw


def parse_filter(raw: str) -> Filter:
    match = _FILTER_RE.fullmatch(raw)
    if match is None:
        raise BadRequest(f"filter {raw!r}: must read field[op]value")
    field, op, value = match["field"], match["op"], match["value"]
    if field not in TEXT_FIELDS + TIME_FIELDS:
        raise BadRequest(
            f"filter {raw!r}: cannot filter on {field}; "
            f"fields are {', '.join(TEXT_FIELDS + TIME_FIELDS)}"
        )
    if op not in FILTER_OPS:
        raise BadRequest(f"filter {raw!r}: unknown operator {op}; use {', '.join(FILTER_OPS)}")
    if field in TIME_FIELDS:
        if op == "like":
            raise BadRequest(f"filter {raw!r}: like applies to text fields only")
        if value == "null":
            if field != "expires" or op not in ("eq", "ne"):
                raise BadRequest(f"filter {raw!r}: null compares with eq or ne, on expires only")
            return Filter(field, op, None)
        if op == "in":
            return Filter(field, op, [_instant(v, raw) for v in value.split(",")])
        return Filter(field, op, _instant(value, raw))
    if op == "in":
        return Filter(field, op, [_text(field, v, raw, op) for v in value.split(",")])
    return Filter(field, op, _text(field, value, raw, op))


def parse_list_query(given: ListParameters) -> ListQuery:
    start_after = given.start_after
    if start_after is not None and not re.fullmatch(r"[a-z0-9_-]{1,128}", start_after):
        raise BadRequest("start_after must be a credential name")
    return ListQuery(
        limit=parse_limit(given.limit),
        start_after=start_after,
        order=parse_order(given.order),
        filters=tuple(parse_filter(f) for f in given.filters),
    )
