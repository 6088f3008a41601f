"""Validation of what comes from outside: network UUIDs and free text."""

from __future__ import annotations

import uuid

from .errors import BadRequest


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


def clean_text(value: str, *, limit: int, multiline: bool = True) -> str:
    """Strip control characters (keeping newlines and tabs where allowed) and cap the length."""
    probe = value.replace("\n", " ").replace("\t", " ") if multiline else value
    if probe.isprintable():  # the usual case, checked in C
        return value[:limit]
    allowed = "\n\t" if multiline else ""
    cleaned = "".join(ch for ch in value if ch.isprintable() or ch in allowed)
    return cleaned[:limit]
