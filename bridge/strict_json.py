"""JSON as RFC 8259 defines it, read from request bodies (the homeserver's and the REST API's).

Python's parser is more lenient than the RFC and than Postgres's ``jsonb``: it accepts ``NaN``
and ``Infinity``, a byte-order mark and UTF-16/32 bodies, turns ``1e400`` into infinity and
raises ``RecursionError`` on deep nesting. Here a body that is not JSON by the RFC (not UTF-8, a
byte-order mark, a non-finite constant, or nesting the parser cannot follow) is a 400
``M_NOT_JSON``. A number outside what a double holds is valid JSON, but nothing downstream can
carry it: it is marked (:data:`OUT_OF_RANGE`) so that the event holding it, alone, is refused.
Nor can Postgres store U+0000 or an unpaired surrogate, which JSON escapes can spell.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from .errors import NotJson

#: How deep an event or a REST body may nest (objects and arrays). Real ones nest a handful of
#: levels; this keeps every later parse, serialisation and handler well inside Python's
#: recursion limit.
MAX_DEPTH = 64
#: Stands for a number no double holds (``1e400``, a 5000-digit integer) after parsing.
OUT_OF_RANGE = math.inf
_MAX_INT_DIGITS = 300

#: Every byte but the four brackets (deleted to leave the structure).
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")
#: Escapes that may spell what Postgres can't store (a surrogate escape may also be half of a
#: valid pair: only a look at the parsed strings tells).
UNSTORABLE_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F])")


def _refuse_constant(name: str) -> Any:
    raise NotJson(f"request body is not JSON: {name} is not a JSON value (RFC 8259)")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        return OUT_OF_RANGE
    if value == 0.0 and any(c in "123456789" for c in text.partition("e")[0].partition("E")[0]):
        return OUT_OF_RANGE  # underflow: a non-zero number that a double rounds to zero
    return value


def _parse_int(text: str) -> int | float:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return OUT_OF_RANGE
    return int(text)


def _is_out_of_range(value: float) -> bool:
    return isinstance(value, float) and math.isinf(value)


def decode_text(raw: bytes) -> str:
    """The body as text: RFC 8259 JSON between systems is UTF-8, with no byte-order mark."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotJson("request body is not JSON: not valid UTF-8") from None
    if text.startswith("\ufeff"):
        raise NotJson("request body is not JSON: it starts with a byte-order mark")
    return text


def loads_flagged(text: str) -> tuple[Any, bool]:
    """Parse JSON text strictly; return the value and whether a number in it was out of range
    (then :data:`OUT_OF_RANGE` in its place). Raise 400 ``M_NOT_JSON`` saying why it is not
    JSON."""
    flagged = False

    def parse_float(number: str) -> float:
        nonlocal flagged
        value = _parse_float(number)
        flagged = flagged or _is_out_of_range(value)
        return value

    def parse_int(number: str) -> int | float:
        nonlocal flagged
        value = _parse_int(number)
        flagged = flagged or _is_out_of_range(value)
        return value

    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_float=parse_float, parse_int=parse_int
        )
    except json.JSONDecodeError as exc:
        raise NotJson(f"request body is not JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise NotJson("request body is not JSON this server reads: nested too deeply") from None
    return value, flagged


def loads_bytes(raw: bytes) -> Any:
    """The value of a strictly parsed UTF-8 JSON body."""
    return loads_flagged(decode_text(raw))[0]


def nesting_depth(text: str, limit: int) -> int:
    """How deep the (valid) JSON ``text`` nests, counting at most to ``limit + 1``.

    Strings are dropped (with their escapes: escaped backslashes first, then escaped quotes,
    left to right as a JSON reader pairs them; then every other piece between the quotes left
    is inside a string), then everything but brackets, then each pass removes the innermost
    level of brackets: all in C, a few passes for real bodies.
    """
    raw = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(raw.split(b'"')[::2]).translate(None, _NOT_BRACKET)
    depth = 0
    while brackets and depth <= limit:
        brackets = _INNERMOST.sub(b"", brackets)
        depth += 1
    return depth


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed value nests more than ``limit`` levels (iteratively: never recurses)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterator[Any]
        if isinstance(node, dict):
            children = iter(node.values())
        elif isinstance(node, list):
            children = iter(node)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def storable(value: Any, limit: int = MAX_DEPTH) -> Any:
    """A copy of ``value`` that any JSON serialiser and ``jsonb`` accept: numbers out of range
    become the string ``"<number out of range>"``, levels past ``limit`` the string
    ``"<nested too deeply>"``. (Strings are made storable where they are serialised.)"""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 1)]
    while stack:
        node, parent, key, depth = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            parent[key] = "<number out of range>"
        elif isinstance(node, (dict, list)) and depth > limit:
            parent[key] = "<nested too deeply>"
        elif isinstance(node, dict):
            copy: dict[str, Any] = dict.fromkeys(node)  # keeps the keys' order
            parent[key] = copy
            stack.extend((child, copy, name, depth + 1) for name, child in node.items())
        elif isinstance(node, list):
            items: list[Any] = [None] * len(node)
            parent[key] = items
            stack.extend((child, items, i, depth + 1) for i, child in enumerate(node))
        else:
            parent[key] = node
    return root[0]


def _unstorable_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate (json pairs up the valid ones)
        return True
    return False


def unstorable_path(value: Any) -> str | None:
    """The dotted path (``media[0].url``) of the first string, or key, holding U+0000 or an
    unpaired surrogate; None when there is none. Iterative: never recurses."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _unstorable_text(node):
                return path or "the body"
        elif isinstance(node, dict):
            for key, child in node.items():
                name = key if key.isidentifier() else json.dumps(key)[:40]
                if _unstorable_text(key):
                    return f"a key of {path or 'the body'}"
                stack.append((child, f"{path}.{name}" if path else name))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node))
    return None
