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


def test_a_forked_child_draws_its_own_numbers() -> None:
    import os

    uuid7()  # the parent has numbers in its pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, uuid7().bytes)
        os._exit(0)
    os.close(write)
    child = uuid.UUID(bytes=os.read(read, 16))
    os.close(read)
    os.waitpid(pid, 0)
    parent = uuid7()
    assert (child.int & ((1 << 74) - 1)) != (parent.int & ((1 << 74) - 1))
