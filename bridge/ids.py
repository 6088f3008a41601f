"""Validation of identifiers that come from outside: network UUIDs and Matrix ids."""

from __future__ import annotations

import re
import uuid

from .errors import BadRequest

# Matched with fullmatch: "$" would also match before a trailing newline.
_MXID_RE = re.compile(r"@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
_ROOM_ID_RE = re.compile(r"![^\s:]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?")


def parse_uuid(value: object, field: str = "id") -> uuid.UUID:
    """A network id, or 400 naming the field."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a UUID")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise BadRequest(f"{field} must be a UUID") from None
    if str(parsed) != value.lower():
        raise BadRequest(f"{field} must be a UUID in canonical form")
    return parsed


def is_mxid(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 255 and bool(_MXID_RE.fullmatch(value))


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1]


def is_room_id(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 255 and bool(_ROOM_ID_RE.fullmatch(value))


def clean_text(value: str, *, limit: int, multiline: bool = True) -> str:
    """Strip control characters (keeping newlines and tabs where allowed) and cap the length."""
    probe = value.replace("\n", " ").replace("\t", " ") if multiline else value
    if probe.isprintable():  # the usual case, checked in C
        return value[:limit]
    allowed = "\n\t" if multiline else ""
    cleaned = "".join(ch for ch in value if ch.isprintable() or ch in allowed)
    return cleaned[:limit]
