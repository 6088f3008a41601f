"""Parsing a homeserver transaction into inbox events and dead-lettered rejects."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest
from ..json_body import json_object
from ..matrix.inbox.events import EventKind, IncomingEvent, RejectedEvent

#: Keys that carry ephemeral events: the stable one and MSC2409's unstable one.
EPHEMERAL_KEYS = ("ephemeral", "de.sorunome.msc2409.ephemeral")
_MAX_ID_LENGTH = 255


@dataclass(frozen=True, slots=True)
class ParsedTransaction:
    events: list[IncomingEvent]
    rejected: list[RejectedEvent]
    body_sha256: bytes
    to_device_count: int
    #: The body as text, for the database to take PDUs from; None when it can't (see below).
    body_text: str | None = None


# Postgres's jsonb holds neither U+0000 nor unpaired surrogates (which Python's JSON parser
# accepts); an event carrying either is dead-lettered with the reason, never stored broken.
_NUL_ESCAPE = "\\u0000"
_UNSTORABLE_BODY = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


def _unstorable(text: str) -> str | None:
    """Why the database can't store this JSON text, or None."""
    if _NUL_ESCAPE in text:
        return "event contains U+0000, which the database cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "event contains an unpaired UTF-16 surrogate"
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _is_id(value: Any, sigil: str) -> bool:
    return (
        isinstance(value, str)
        and 1 < len(value) <= _MAX_ID_LENGTH
        and value[0] == sigil
        and value.isprintable()
        and " " not in value
    )


def _printable(value: Any) -> str | None:
    return value if isinstance(value, str) and value.isprintable() and len(value) <= 255 else None


def _reject(raw: Any, reason: str) -> RejectedEvent:
    # ensure_ascii keeps it encodable; U+0000 and lone surrogates are replaced to fit jsonb.
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    canonical = re.sub(r"\\u(0000|d[89a-f][0-9a-f]{2})", r"\\ufffd", canonical)
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    room_id = raw.get("room_id") if isinstance(raw, dict) else None
    return RejectedEvent(
        dedupe_key="intake:" + hashlib.sha256(canonical.encode()).hexdigest(),
        event_id=_printable(event_id),
        room_id=_printable(room_id),
        json=canonical,
        error=reason,
    )


def _pdu(raw: Any, index: int, body_in_db: bool) -> IncomingEvent | RejectedEvent:
    if not isinstance(raw, dict):
        return _reject(raw, "event is not a JSON object")
    if not _is_id(raw.get("event_id"), "$"):
        return _reject(raw, "event_id missing or malformed")
    event_type = raw.get("type")
    if _printable(event_type) is None or not event_type:
        return _reject(raw, "type missing or malformed")
    if not _is_id(raw.get("room_id"), "!"):
        return _reject(raw, "room_id missing or malformed")
    if not _is_id(raw.get("sender"), "@"):
        return _reject(raw, "sender missing or malformed")
    text = None
    if not body_in_db:
        text = json.dumps(raw, ensure_ascii=False)
        problem = _unstorable(text)
        if problem:
            return _reject(raw, problem)
    return IncomingEvent(
        event_id=raw["event_id"],
        lane=raw["room_id"],
        kind=EventKind.PDU,
        event_type=event_type,
        sender=raw["sender"],
        json=text,
        index=None if text is not None else index,
    )


def _edu(
    raw: Any, txn_id: str, body_sha256: bytes, seen: dict[str, int]
) -> IncomingEvent | RejectedEvent:
    if not isinstance(raw, dict):
        return _reject(raw, "ephemeral event is not a JSON object")
    event_type = raw.get("type")
    if _printable(event_type) is None or not event_type:
        return _reject(raw, "ephemeral event type missing or malformed")
    room_id = raw.get("room_id")
    if room_id is not None and not _is_id(room_id, "!"):
        return _reject(raw, "ephemeral event room_id malformed")
    canonical = _canonical(raw)
    problem = _unstorable(canonical)
    if problem:
        return _reject(raw, problem)
    # EDUs have no id. Key them by transaction (id and body) and content, so a resend of the
    # same transaction stores nothing twice, while the same content in a later transaction is
    # kept, even under a reused id (Synapse on SQLite restarts its ids with other bodies).
    digest = hashlib.sha256(
        txn_id.encode() + b"\0" + body_sha256 + b"\0" + canonical.encode()
    ).hexdigest()[:40]
    occurrence = seen.get(digest, 0)
    seen[digest] = occurrence + 1
    sender = _printable(raw.get("sender"))
    return IncomingEvent(
        event_id=f"edu:{digest}:{occurrence}",
        lane=room_id or "",
        kind=EventKind.EDU,
        event_type=event_type,
        sender=sender,
        json=canonical,
    )


def _list(body: dict[str, Any], key: str, *, required: bool = False) -> list[Any]:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"'{key}' is required")
        return []
    if not isinstance(value, list):
        raise BadRequest(f"'{key}' must be a list")
    return value


def parse_transaction(txn_id: str, raw_body: bytes) -> ParsedTransaction:
    """Validate the body's shape; sort events into well-formed ones and rejects.

    Raises 400 (``M_NOT_JSON`` / ``M_BAD_JSON``) only for a body that is not a transaction at
    all; a malformed event inside a good transaction is rejected alone, to be dead-lettered.
    """
    body = json_object(raw_body)
    pdus = _list(body, "events", required=True)
    # Synapse sends the same list under both keys when the registration enables both; the
    # stable key wins, the unstable one is read only from homeservers that send nothing else.
    stable, legacy = EPHEMERAL_KEYS
    edus = _list(body, stable) if stable in body else _list(body, legacy)
    to_device = _list(body, "de.sorunome.msc2409.to_device")

    body_sha256 = hashlib.sha256(raw_body).digest()
    events: list[IncomingEvent] = []
    rejected: list[RejectedEvent] = []
    # The database parses the body once and takes each PDU from it, unless the body is not
    # UTF-8 (JSON may be UTF-16/32) or holds an escape it can't store somewhere.
    body_text: str | None = None
    if not _UNSTORABLE_BODY.search(raw_body):
        try:
            body_text = raw_body.decode("utf-8")
        except UnicodeDecodeError:
            body_text = None
    for index, raw in enumerate(pdus):
        item = _pdu(raw, index, body_text is not None)
        (events if isinstance(item, IncomingEvent) else rejected).append(item)  # type: ignore[arg-type]
    seen: dict[str, int] = {}
    for raw in edus:
        item = _edu(raw, txn_id, body_sha256, seen)
        (events if isinstance(item, IncomingEvent) else rejected).append(item)  # type: ignore[arg-type]
    return ParsedTransaction(
        events=events,
        rejected=rejected,
        body_sha256=body_sha256,
        to_device_count=len(to_device),
        body_text=body_text if any(e.index is not None for e in events) else None,
    )
