"""``bridge demo`` as a newcomer runs it: a subprocess in an empty directory, its printed
credentials used by a real Matrix client and over the REST API, stopped with SIGINT.

The demo brings its own Synapse and PostgreSQL (none of the session's processes are used).
Time to ready is printed for the cold run (configs, keys, the seeded scene) and the warm one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mautrix.client import ClientAPI
from mautrix.errors import MNotFound
from mautrix.types import EventType, RoomID, UserID

from bridge.demo.seed import DIRECT_MESSAGES, GROUP_MESSAGE, GROUP_TITLE, NOTIFICATION_TITLE
from bridge.local.processes import process_alive
from tests.e2e.bed import (
    REPO_ROOT,
    child_env,
    ghost_of,
    logged_in,
    notices,
    timeline,
    wait_until,
)

pytestmark = pytest.mark.e2e

READY_TIMEOUT = 240.0
STOP_TIMEOUT = 60.0
STEP = 30.0
REQUIRED_KEYS = {"homeserver_url", "matrix_user", "matrix_password", "network_users", "rest_url"}


@dataclass
class DemoRun:
    proc: asyncio.subprocess.Process
    report: dict[str, Any]
    seconds: float
    stderr: Path


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """An empty working directory (traversable: as root, PostgreSQL runs as another user)."""
    root = Path(tempfile.mkdtemp(prefix="bridge-demo-e2e-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _argv(root: Path) -> list[str]:
    # Any free ports: 8008 and 29400, a new demo's usual ones, may be taken on a test machine.
    return [
        sys.executable,
        "-m",
        "bridge",
        "demo",
        "--json",
        "--dir",
        str(root / "demo"),
        "--port",
        "0",
        "--homeserver-port",
        "0",
    ]


async def _start(root: Path, name: str) -> DemoRun:
    """``bridge demo --json``; returns once it printed its report (or fails with its stderr)."""
    stderr = root / f"{name}.stderr"
    began = time.monotonic()
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *_argv(root),
            cwd=root,
            env=child_env(PYTHONPATH=str(REPO_ROOT)),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            stdin=asyncio.subprocess.DEVNULL,
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(
            f"demo not ready in {READY_TIMEOUT:.0f}s:\n{stderr.read_text()}"
        ) from None
    seconds = time.monotonic() - began
    assert line, f"demo exited ({await proc.wait()}) without a report:\n{stderr.read_text()}"
    return DemoRun(proc, json.loads(line), seconds, stderr)


async def _interrupt(run: DemoRun) -> None:
    """SIGINT, as Ctrl-C sends it; the demo exits 0 after stopping everything."""
    run.proc.send_signal(signal.SIGINT)
    try:
        status = await asyncio.wait_for(run.proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        run.proc.kill()
        raise AssertionError(f"demo still running {STOP_TIMEOUT:.0f}s after SIGINT") from None
    text = run.stderr.read_text()
    assert status == 0, text
    for part in ("the bridge", "Synapse", "PostgreSQL"):
        assert f"[ok] stopped {part}" in text, text


def _processes_using(root: Path) -> list[str]:
    """Command lines of live processes that name the demo's directory (postgres -D, synapse -c)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline and process_alive(int(entry.name)):
            found.append(f"{entry.name}: {cmdline}")
    return found


async def _nothing_left(run: DemoRun, root: Path) -> None:
    pids = [p for p in run.report["pids"].values() if p] + [run.proc.pid]

    async def gone() -> bool:
        return not any(process_alive(p) for p in pids) and not _processes_using(root)

    await wait_until(
        gone,
        within=STOP_TIMEOUT,
        what=lambda: f"the demo's processes to exit: {_processes_using(root)}",
    )


async def _rest(
    session: aiohttp.ClientSession,
    report: dict[str, Any],
    method: str,
    path: str,
    token: str,
    **kwargs: Any,
) -> dict[str, Any]:
    async with session.request(
        method,
        f"{report['rest_url']}{path}",
        headers={"Authorization": f"Bearer {token}"},
        **kwargs,
    ) as resp:
        body = await resp.json()
        assert 200 <= resp.status < 300, (resp.status, body)
        assert isinstance(body, dict)
        return body


async def _bodies_from(client: ClientAPI, room_id: RoomID, sender: str) -> list[str]:
    return [
        str(e["content"].get("body"))
        for e in await timeline(client, room_id)
        if e.get("type") == "m.room.message" and e.get("sender") == sender
    ]


async def _direct_room(client: ClientAPI, ghost: UserID) -> RoomID:
    """The joined room that is the direct chat with ``ghost``: two members, the ghost one."""
    for room_id in await client.get_joined_rooms():
        members = await client.get_joined_members(room_id)
        if set(members) == {client.mxid, ghost}:
            return room_id
    raise AssertionError(f"no direct chat with {ghost} among the joined rooms")


async def _use_the_printed_credentials(report: dict[str, Any]) -> None:
    ann, ben = report["network_users"]
    async with (
        logged_in(
            report["homeserver_url"], report["matrix_user"], report["matrix_password"]
        ) as client,
        aiohttp.ClientSession(trust_env=False) as http,
    ):
        # The seeded direct conversation, with its messages from both sides.
        room_id = await _direct_room(client, ghost_of(ann["id"]))
        theirs = await _bodies_from(client, room_id, ghost_of(ann["id"]))
        mine = await _bodies_from(client, room_id, client.mxid)
        assert theirs[:2] == [text for from_matrix, text in DIRECT_MESSAGES if not from_matrix]
        assert mine[:2] == [text for from_matrix, text in DIRECT_MESSAGES if from_matrix]
        conversations = await _rest(
            http,
            report,
            "GET",
            "/messaging-api/v1/conversations",
            ann["token"],
            params={"isGroup": "false"},
        )
        (direct,) = [
            c
            for c in conversations["conversations"]
            if report["matrix_network_id"] in c["participantIds"]
        ]
        # The group's portal room, and the notification in the management room.
        group_room = await _room_named(client, GROUP_TITLE)
        assert GROUP_MESSAGE in await _bodies_from(client, group_room, ghost_of(ben["id"]))
        management = RoomID(report["management_room"])
        assert any(NOTIFICATION_TITLE in body for body in await notices(client, management))

        # Matrix to the network: sent in the client, read back over REST as Ann.
        text = f"from the Matrix client {time.time()}"
        await client.send_text(room_id, text)

        async def on_the_network() -> bool:
            found = await _rest(
                http,
                report,
                "GET",
                "/messaging-api/v1/messages",
                ann["token"],
                params={"conversationId": direct["id"], "pageRowCount": "100"},
            )
            return any(m["content"] == text for m in found["messages"])

        await wait_until(on_the_network, within=STEP, what=f"{text!r} over REST")

        # The network to Matrix: posted over REST as Ann, seen in the client.
        posted = f"from the REST API {time.time()}"
        await _rest(
            http,
            report,
            "POST",
            "/messaging-api/v1/messages",
            ann["token"],
            json={"conversationId": direct["id"], "content": posted},
        )

        async def in_matrix() -> bool:
            return posted in await _bodies_from(client, room_id, ghost_of(ann["id"]))

        await wait_until(in_matrix, within=STEP, what=f"{posted!r} in the Matrix client")


async def _room_named(client: ClientAPI, name: str) -> RoomID:
    for room_id in await client.get_joined_rooms():
        with contextlib.suppress(MNotFound):
            state = await client.get_state_event(room_id, EventType.ROOM_NAME)
            if getattr(state, "name", None) == name:
                return room_id
    raise AssertionError(f"no joined room named {name!r}")


async def test_demo_cold_then_warm_then_after_a_crash(demo_dir: Path) -> None:
    cold = await _start(demo_dir, "cold")
    try:
        assert REQUIRED_KEYS <= set(cold.report), cold.report
        assert [u["name"] for u in cold.report["network_users"]] == ["Ann Example", "Ben Sample"]
        assert all(u["token"] and u["id"] for u in cold.report["network_users"])
        await _use_the_printed_credentials(cold.report)
    finally:
        if cold.proc.returncode is None:
            await _interrupt(cold)
    await _nothing_left(cold, demo_dir)

    warm = await _start(demo_dir, "warm")
    try:
        for key in ("homeserver_url", "matrix_user", "matrix_password", "rest_url"):
            assert warm.report[key] == cold.report[key]
        assert [u["id"] for u in warm.report["network_users"]] == [
            u["id"] for u in cold.report["network_users"]
        ]
        assert "scene of the first run reused" in warm.stderr.read_text()
        await _use_the_printed_credentials(warm.report)
    finally:
        # A crash this time: Synapse and PostgreSQL are left running without the demo.
        warm.proc.kill()
        await warm.proc.wait()
    print(
        f"\nbridge demo time to ready (from the command to its report): cold {cold.seconds:.1f} s,"
        f" warm {warm.seconds:.1f} s; the demo's own count from its start: cold "
        f"{cold.report['ready_seconds']:.1f} s, warm {warm.report['ready_seconds']:.1f} s"
    )
    assert process_alive(warm.report["pids"]["synapse"])

    # The next run stops the Synapse left behind, adopts PostgreSQL, and works as before.
    after_crash = await _start(demo_dir, "after-crash")
    try:
        assert (
            f"stopped the Synapse an earlier demo left running (pid {warm.report['pids']['synapse']})"
            in after_crash.stderr.read_text()
        )
        assert after_crash.report["matrix_user"] == cold.report["matrix_user"]
        async with logged_in(
            after_crash.report["homeserver_url"],
            after_crash.report["matrix_user"],
            after_crash.report["matrix_password"],
        ) as client:
            assert RoomID(after_crash.report["management_room"]) in await client.get_joined_rooms()
    finally:
        if after_crash.proc.returncode is None:
            await _interrupt(after_crash)
    await _nothing_left(after_crash, demo_dir)

    # A port taken by another program: the failure names the step, the log and the fix.
    port = int(warm.report["rest_url"].rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = await asyncio.create_subprocess_exec(
            *_argv(demo_dir),
            cwd=demo_dir,
            env=child_env(PYTHONPATH=str(REPO_ROOT)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(done.communicate(), READY_TIMEOUT)
    text = err.decode()
    assert done.returncode == 1, text
    assert out == b""
    assert f"step failed: bridge listening at {warm.report['rest_url']}" in text
    assert f"log file: {warm.report['logs']['bridge']}" in text
    assert "likely fix:" in text and "port" in text
    assert not _processes_using(demo_dir)
