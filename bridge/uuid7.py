"""Time-ordered ids (UUID version 7, RFC 9562) for rows the bridge writes in bulk.

Messages and notifications get ids that sort by creation time, so their primary-key indexes
grow at the right edge instead of taking every insert at a random leaf page, and making one
costs less than ``uuid.uuid4()``: the ``UUID`` object is filled in directly, its value having
been built valid, and its 74 random bits come from ``os.urandom`` a few hundred ids at a time.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_A_MASK = (1 << 12) - 1
_RAND_B_MASK = (1 << 62) - 1
_UNKNOWN = uuid.SafeUUID.unknown
_BATCH = 256  # random numbers drawn from the OS at once
_set = object.__setattr__
_randoms: list[int] = []


def _refill() -> None:
    pool = os.urandom(10 * _BATCH)
    _randoms.extend(int.from_bytes(pool[i : i + 10], "big") for i in range(0, len(pool), 10))


os.register_at_fork(after_in_child=_randoms.clear)  # a child never reuses its parent's numbers


def uuid7() -> uuid.UUID:
    """A new random id whose first 48 bits are the Unix time in milliseconds."""
    try:
        rand = _randoms.pop()  # atomic: each number is used once, whichever thread asks
    except IndexError:
        _refill()
        rand = _randoms.pop()
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
