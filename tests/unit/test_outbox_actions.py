"""Outbox actions: the JSON they are stored as, what reads back, and what mypy refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from bridge.matrix.outbox.actions import (
    CreateRoom,
    Invite,
    Join,
    Kick,
    Leave,
    OutboxAction,
    Redact,
    Send,
    SetProfile,
    SetState,
    Unreadable,
    decode,
    encode,
    kind_of,
)

ROOT = Path(__file__).resolve().parents[2]

EVERY_KIND: list[OutboxAction] = [
    Send(room_id="!r:hs", event_type="m.room.message", content={"body": "hi"}, message_id="m1"),
    Redact(room_id="!r:hs", refs={"/event_id": 4}, reason="gone"),
    SetState(room_id="!r:hs", event_type="m.room.topic", content={"topic": "t"}),
    Invite(room_id="!r:hs", user_id="@a:hs", reason="come"),
    Kick(room_id="!r:hs", user_id="@a:hs"),
    Join(room_id="!r:hs"),
    Leave(reason="bye"),
    SetProfile(displayname="Alice", avatar_url=None),
    CreateRoom(conversation_id="c", invite=["@a:hs"], is_direct=True, power_levels={"users": {}}),
]


@pytest.mark.parametrize("action", EVERY_KIND, ids=kind_of)
def test_every_action_reads_back_as_written(action: OutboxAction) -> None:
    stored = encode(action)
    assert json.loads(stored)["action"] == kind_of(action)
    assert decode(kind_of(action), stored) == action


def test_the_payload_keeps_the_shape_rows_had_before() -> None:
    assert json.loads(
        encode(
            Send(room_id="!r:hs", event_type="m.room.message", content={"body": "x"}, report_of=3)
        )
    ) == {
        "action": "send",
        "room_id": "!r:hs",
        "event_type": "m.room.message",
        "content": {"body": "x"},
        "report_of": 3,
    }
    # Absent and cleared profile fields stay distinct.
    assert json.loads(encode(SetProfile(avatar_url=None))) == {
        "action": "profile",
        "avatar_url": None,
    }
    assert SetProfile(avatar_url=None).fields() == {"avatar_url": None}
    # A row written without the tag (by an earlier version) reads by its action column.
    assert decode("join", b'{"room_id": "!r:hs"}') == Join(room_id="!r:hs")


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("teleport", {"room_id": "!r:hs"}, "unknown action 'teleport'"),
        ("send", {"room_id": "!r:hs", "content": {}}, "missing required field `event_type`"),
        ("invite", {"room_id": "!r:hs", "user": "@a:hs"}, "unknown field `user`"),
        (
            "kick",
            {"room_id": "!r:hs", "user_id": 7},
            "Expected `str`, got `int` - at `payload.user_id`",
        ),
        ("create_room", {"preset": "open"}, "at `payload.preset`"),
        ("create_room", {"invite": [""]}, "at `payload.invite[0]`"),
        ("send", {"action": "join", "room_id": "!r:hs"}, "at `payload.action`"),
        ("redact", {"room_id": "!r:hs", "refs": {"/event_id": 0}}, "at `payload.refs[...]`"),
    ],
)
def test_what_no_type_fits_is_unreadable_with_the_reason(
    kind: str, payload: dict[str, object], reason: str
) -> None:
    found = decode(kind, json.dumps(payload))
    assert isinstance(found, Unreadable)
    assert reason in found.reason
    assert found.room_id == payload.get("room_id")  # where the failure is reported


WRONG = """
from bridge.matrix.outbox.actions import Invite, Send, SetProfile
from bridge.matrix.outbox.queue import OutboxQueue
from bridge.matrix.outbox.store import OutboxStore


async def enqueue(conn: object) -> None:
    queue = OutboxQueue(OutboxStore())
    await queue.enqueue(conn, "!r:hs", "@b:hs", "send", {"room_id": "!r:hs"})
    await queue.enqueue(conn, "!r:hs", "@b:hs", Send(room_id="!r:hs", evnt_type="m", content={}))
    await queue.enqueue(conn, "!r:hs", "@b:hs", Invite(room_id="!r:hs", user_id=42))
    await queue.enqueue(conn, "!r:hs", "@b:hs", SetProfile(display_name="x"))
"""


def test_mypy_refuses_a_wrong_action(tmp_path: Path) -> None:
    module = tmp_path / "wrong_actions.py"
    module.write_text(WRONG)
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(module),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in found.stdout.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    assert lines == [9, 10, 11, 12], found.stdout  # each wrong call, nothing else
    assert 'Unexpected keyword argument "evnt_type"' in found.stdout
    assert 'Unexpected keyword argument "display_name"' in found.stdout


def test_actions_are_structs_with_one_tag_each() -> None:
    kinds = [kind_of(a) for a in EVERY_KIND]
    assert len(set(kinds)) == len(kinds)
    assert all(isinstance(a, msgspec.Struct) for a in EVERY_KIND)
