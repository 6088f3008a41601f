"""uuid7: valid version-7 UUIDs that sort by time and do not repeat."""

from __future__ import annotations

import time
import uuid

from bridge.uuid7 import uuid7


def test_ids_are_version_7_rfc_variant_and_round_trip() -> None:
    for _ in range(2000):  # more than one chunk of random bytes
        new = uuid7()
        assert new.version == 7 and new.variant == uuid.RFC_4122
        assert uuid.UUID(str(new)) == new and uuid.UUID(bytes=new.bytes) == new
        assert hash(new) == hash(uuid.UUID(str(new)))


def test_ids_carry_the_time_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= first.int >> 80 <= after
    stamps = [u.int >> 80 for u in [first, *(uuid7() for _ in range(20_000))]]
    assert stamps == sorted(stamps)  # ids made later never sort before by their time


def test_ids_do_not_repeat() -> None:
    ids = {uuid7() for _ in range(100_000)}
    assert len(ids) == 100_000
