"""The daemon as a real process: embedded Postgres, restarts, SIGTERM, SIGKILL."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from bridge.matrix.inbox.store import _LANE_LOCK_CLASS
from tests.conftest import HS_TOKEN, config_data
from tests.pg_tcp import free_port

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 60.0


class Daemon:
    """`bridge run` in a subprocess, on a config in its own directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        data = config_data(
            appservice__port=self.port,
            appservice__address=f"http://127.0.0.1:{self.port}",
            appservice__embedded_data_dir="pg",
            appservice__inbox={"workers": 2, "poll_interval": 0.2},
        )
        self.config = workdir / "config.yaml"
        self.config.write_text(yaml.safe_dump(data))
        self.log = workdir / "bridge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/bridge?host={self.workdir / 'pg' / 'run'}&port=5432"

    @property
    def postmaster_pid(self) -> int | None:
        pidfile = self.workdir / "pg" / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["PYTHONPATH"] = str(ROOT)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "-c", str(self.config)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        asyncio.run(self._wait_ready())

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"bridge exited {self.proc.returncode}:\n{self.log.read_text()}"
                    )
                try:
                    async with http.get(f"{self.url}/_matrix/mau/ready") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"bridge not ready in time:\n{self.log.read_text()}")

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=DEADLINE)
        self.proc = None
        return code

    def kill_all(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pid = self.postmaster_pid
        if pid is not None and process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); only a live process has a non-Z state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    workdir = Path(tempfile.mkdtemp(prefix="bridge-daemon-"))
    workdir.chmod(0o711)
    d = Daemon(workdir)
    try:
        yield d
    finally:
        d.kill_all()
        if sys.exc_info()[0] is not None:
            print(d.log.read_text())
        shutil.rmtree(workdir, ignore_errors=True)


def put_transaction(daemon: Daemon, txn_id: str, events: list[dict[str, Any]]) -> int:
    async def go() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.put(
                f"{daemon.url}/_matrix/app/v1/transactions/{txn_id}",
                json={"events": events},
                headers={"Authorization": f"Bearer {HS_TOKEN}"},
            ) as resp,
        ):
            return resp.status

    return asyncio.run(go())


def event(n: int) -> dict[str, Any]:
    return {
        "event_id": f"$d{n}",
        "type": "m.room.message",
        "room_id": "!room:localhost",
        "sender": "@alice:localhost",
        "content": {"msgtype": "m.text", "body": str(n)},
    }


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def test_embedded_start_restart_and_sigterm_stops_postgres(daemon: Daemon) -> None:
    daemon.start()
    first_pg = daemon.postmaster_pid
    assert first_pg is not None and process_alive(first_pg)
    assert put_transaction(daemon, "1", [event(1), event(2)]) == 200
    assert daemon.signal(signal.SIGTERM) == 0
    assert wait_gone(first_pg), "embedded Postgres still running after SIGTERM"
    assert daemon.postmaster_pid is None

    daemon.start()  # same data directory
    assert daemon.postmaster_pid not in (None, first_pg)
    rows = asyncio.run(fetch(daemon.dsn, "SELECT event_id FROM inbox ORDER BY id"))
    assert [r["event_id"] for r in rows] == ["$d1", "$d2"]
    second_pg = daemon.postmaster_pid
    assert daemon.signal(signal.SIGINT) == 0
    assert second_pg is not None and wait_gone(second_pg)


def test_events_committed_then_killed_are_processed_once_after_restart(daemon: Daemon) -> None:
    daemon.start()
    postmaster = daemon.postmaster_pid

    async def hold_lane_and_ingest() -> asyncpg.Connection:
        # Hold the room's lane as a busy worker would, so nothing gets processed yet.
        blocker = await asyncpg.connect(daemon.dsn)
        await blocker.execute("BEGIN")
        await blocker.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", _LANE_LOCK_CLASS, "!room:localhost"
        )
        return blocker

    loop = asyncio.new_event_loop()
    try:
        blocker = loop.run_until_complete(hold_lane_and_ingest())
        assert put_transaction(daemon, "k1", [event(n) for n in range(50)]) == 200
        pending = loop.run_until_complete(
            blocker.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'")
        )
        assert pending == 50
        assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
        assert postmaster is not None and process_alive(postmaster)  # orphaned, still up
        loop.run_until_complete(blocker.close())
    finally:
        loop.close()

    daemon.start()
    assert daemon.postmaster_pid == postmaster  # adopted, not a second server

    async def wait_processed() -> list[asyncpg.Record]:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            rows = await fetch(
                daemon.dsn, "SELECT event_id, state, processed_at FROM inbox ORDER BY id"
            )
            if all(r["state"] != "pending" for r in rows):
                return rows
            await asyncio.sleep(0.1)
        raise AssertionError("events not processed after restart")

    rows = asyncio.run(wait_processed())
    assert [r["event_id"] for r in rows] == [f"$d{n}" for n in range(50)]
    assert {r["state"] for r in rows} == {"ignored"}
    assert all(r["processed_at"] is not None for r in rows)
    # A resend of the same transaction after the restart stores nothing twice.
    assert put_transaction(daemon, "k1", [event(n) for n in range(50)]) == 200
    count = asyncio.run(fetch(daemon.dsn, "SELECT count(*) AS n FROM inbox"))[0]["n"]
    assert count == 50
    assert daemon.signal(signal.SIGTERM) == 0
    assert wait_gone(postmaster)


def test_refuses_placeholder_tokens(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    shutil.copy(ROOT / "config.example.yaml", path)
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=DEADLINE,
    )
    assert result.returncode == 2
    assert "appservice.as_token" in result.stderr
    assert "generate-registration" in result.stderr


def test_users_add_and_list(daemon: Daemon) -> None:
    def bridge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args, "-c", str(daemon.config)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=DEADLINE,
        )

    added = bridge("users", "add", "--name", "Ann Example", "--avatar", "mxc://localhost/abc")
    assert added.returncode == 0, added.stderr
    user_id = added.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", user_id)
    assert bridge("users", "add", "--name", "Bob").returncode == 0
    listed = bridge("users", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows[0] == [user_id, "Ann Example", "-", "mxc://localhost/abc"]
    assert [r[1] for r in rows] == ["Ann Example", "Bob"]
    bad = bridge("users", "add", "--name", "Eve", "--avatar", "javascript:x")
    assert bad.returncode == 2 and "avatar" in bad.stderr
    assert daemon.postmaster_pid is None  # the command stopped the Postgres it started
