"""Time-ordered ids (UUID version 7, RFC 9562) for rows the bridge writes in bulk.

Messages and notifications get ids that sort by creation time, so their primary-key indexes
grow at the right edge instead of taking every insert at a random leaf page, and making one
costs less than ``uuid.uuid4()``: the ``UUID`` object is filled in directly, its value having
been built valid (74 random bits from ``os.urandom``).
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_A_MASK = (1 << 12) - 1
_RAND_B_MASK = (1 << 62) - 1
_UNKNOWN = uuid.SafeUUID.unknown
_set = object.__setattr__


def uuid7() -> uuid.UUID:
    """A new random id whose first 48 bits are the Unix time in milliseconds."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (time.time_ns() // 1_000_000) << 80
        | ((rand >> 62) & _RAND_A_MASK) << 64
        | (rand & _RAND_B_MASK)
        | _VERSION_AND_VARIANT
    )
    new = uuid.UUID.__new__(uuid.UUID)
    _set(new, "int", value)
    _set(new, "is_safe", _UNKNOWN)
    return new
