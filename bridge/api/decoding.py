"""Decoding requests into their declared types: every problem is a 400 naming the field.

Bodies are JSON objects decoded by msgspec into a :class:`~bridge.api.requests.Body` type
(strict: no coercion, no unknown field). Query strings are decoded into a query type: each
parameter must be declared, one not typed as a list may be given once, and its text becomes
the declared type (``true``/``false`` for booleans, decimal digits for integers) before the
type's constraints apply. Path ids are UUIDs.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from msgspec import inspect
from multidict import MultiMapping

from ..errors import BadRequest
from .fields import (
    DATE_FILTER_PATTERN,
    ID_FILTER_PATTERN,
    SOME_TEXT_PATTERN,
    TEXT_PATTERN,
    UUID_PATTERN,
)
from .requests import SERVER_OWNED, Body, broken_rule

B = TypeVar("B", bound=Body)
Q = TypeVar("Q", bound=msgspec.Struct)

_WHERE = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_PATTERN = re.compile(r"^Expected `str` matching regex '(?P<pattern>.*)'$", re.DOTALL)
_PATTERN_PHRASES = {
    TEXT_PATTERN: "must not contain NUL (U+0000)",
    SOME_TEXT_PATTERN: "must hold a character other than white space, and no NUL (U+0000)",
    UUID_PATTERN: "must be a UUID",
    ID_FILTER_PATTERN: "must be a UUID or null",
    DATE_FILTER_PATTERN: (
        "must be a day (YYYY-MM-DD, 1900 to 2999), an ISO 8601 instant, null, $today, $ltoday, "
        "$week, $lweek, $month, $leq-<day or instant> or $lin-<day or instant>"
    ),
}
_INTEGER = re.compile(r"-?[0-9]{1,20}")
_UUID = re.compile(UUID_PATTERN)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def describe(error: msgspec.ValidationError, *, parameter: bool = False) -> str:
    """msgspec's message with the field named as the client wrote it (``device.token``)."""
    match = _WHERE.match(str(error))
    assert match is not None  # the pattern matches any text
    what, path = match["what"], (match["path"] or "").lstrip(".")
    if unknown := _UNKNOWN.match(what):
        name = unknown["name"]
        if name in SERVER_OWNED:
            return f"{_join(path, name)} is set by the server; leave it out"
        kind = "query parameter" if parameter else "field"
        return f"unknown {kind} {_join(path, name)}"
    if missing := _MISSING.match(what):
        return f"{_join(path, missing['name'])} is required"
    if pattern := _PATTERN.match(what):
        phrase = _PATTERN_PHRASES.get(pattern["pattern"].replace("\\\\", "\\"))
        what = phrase or f"must match {pattern['pattern']}"
    what = what.replace("Expected `", "expected `").replace("Invalid ", "invalid ")
    return f"{path}: {what}" if path else what


async def decode_body(request: web.Request, kind: type[B]) -> B:
    """The request's body as ``kind`` (an empty body is an empty object), or 400."""
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw.strip() or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(describe(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON (UTF-8, RFC 8259): {_cause(exc)}") from None
    if isinstance(body, Body) and (problem := broken_rule(body)) is not None:
        raise BadRequest(problem)
    return body


def _cause(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).removeprefix("JSON is malformed: ")


@functools.cache
def _parameters(kind: type[msgspec.Struct]) -> dict[str, tuple[bool, str]]:
    """Each parameter of a query type: (repeatable, scalar kind: ``int``/``bool``/``str``)."""
    info = inspect.type_info(kind)
    assert isinstance(info, inspect.StructType)
    found = {}
    for f in info.fields:
        found[f.encode_name] = _shape(f.type)
    return found


def _shape(t: inspect.Type) -> tuple[bool, str]:
    if isinstance(t, inspect.Metadata):  # a description or schema extras around the type
        return _shape(t.type)
    if isinstance(t, inspect.UnionType):
        # UNSET is no member: a union here is of scalars that keep their text.
        return (False, "str") if len(t.types) != 1 else _shape(t.types[0])
    if isinstance(t, inspect.ListType):
        return True, _shape(t.item_type)[1]
    if isinstance(t, inspect.IntType):
        return False, "int"
    if isinstance(t, inspect.BoolType):
        return False, "bool"
    return False, "str"


def _scalar(kind: str, text: str) -> object:
    if kind == "int" and _INTEGER.fullmatch(text):
        return int(text)
    if kind == "bool" and text in ("true", "false"):
        return text == "true"
    return text  # left as text: the type's check names the parameter


def decode_query(query: MultiMapping[str], kind: type[Q]) -> Q:
    """The query string as ``kind``, or 400 naming the parameter."""
    declared = _parameters(kind)
    data: dict[str, Any] = {}
    for name in dict.fromkeys(query.keys()):
        shape = declared.get(name)
        if shape is None:
            raise BadRequest(f"unknown query parameter {name}")
        many, scalar = shape
        values = query.getall(name)
        if many:
            data[name] = [_scalar(scalar, v) for v in values]
        elif len(values) > 1:
            raise BadRequest(f"{name} may be given only once")
        else:
            data[name] = _scalar(scalar, values[0])
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise BadRequest(describe(exc, parameter=True)) from None


def path_id(request: web.Request, name: str) -> uuid.UUID:
    """The id in the path's ``{name}``, or 400 naming it."""
    value = request.match_info[name]
    if not _UUID.fullmatch(value):
        raise BadRequest(f"{name} must be a UUID")
    return uuid.UUID(value)
