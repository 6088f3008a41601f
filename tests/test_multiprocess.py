"""Several bridge processes on one PostgreSQL server (over TCP): intake and worker roles, a
worker SIGKILLed mid-stream, nothing lost, duplicated or reordered."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from bench.processing import insert_portals, make_portals
from bridge.matrix.outbox.actions import Send
from bridge.matrix.outbox.store import OutboxItem, OutboxStore
from tests.conftest import AS_TOKEN, HS_TOKEN, config_data
from tests.fake_homeserver import FakeHomeserver, serve_fake_homeserver
from tests.pg_tcp import free_port

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 90.0
BOT = "@_pn_bot:localhost"


class BridgeProcess:
    """``bridge run --role ROLE`` in its own process, logging to a file."""

    def __init__(
        self, workdir: Path, name: str, role: str, config: Path, port: int, *args: str
    ) -> None:
        self.name, self.role, self.port = name, role, port
        self.log = workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["PYTHONPATH"] = str(ROOT)
        env["BRIDGE_APPSERVICE__PORT"] = str(port)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "-c", str(config), "--role", role, *args],
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while "listening on" not in self.text():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.text()}")
            assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.text()}"
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Deployment:
    """Processes of one bridge on one database, all on one config file."""

    def __init__(self, workdir: Path, dsn: str, hs_url: str, **overrides: Any) -> None:
        self.workdir = workdir
        self.intake_port = free_port()
        self.worker_port = free_port()
        data = config_data(
            homeserver__address=hs_url,
            appservice__address=f"http://127.0.0.1:{self.intake_port}",
            appservice__port=self.intake_port,
            appservice__database=dsn,
            appservice__reuse_port=True,
            appservice__database_pool_max=12,
            appservice__inbox={
                "workers": 2,
                "poll_interval": 0.5,
                "retry_delay": 0.2,
                "max_attempts": 5,
            },
            appservice__outbox={
                "workers": 2,
                "poll_interval": 0.5,
                "request_timeout": 2.0,
                "lease_seconds": 4.0,
                "retry_delay": 0.2,
            },
            logging__level="INFO",
            **overrides,
        )
        self.config = workdir / "config.yaml"
        self.config.write_text(yaml.safe_dump(data))
        self.processes: list[BridgeProcess] = []

    def launch(self, name: str, role: str, *args: str) -> BridgeProcess:
        port = self.intake_port if role == "intake" else self.worker_port
        process = BridgeProcess(self.workdir, name, role, self.config, port, *args)
        self.processes.append(process)
        return process

    async def start(self, name: str, role: str, *args: str) -> BridgeProcess:
        process = self.launch(name, role, *args)
        await process.ready()
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.text()[-4000:]}" for p in self.processes)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
async def hs(aiohttp_server: Any) -> AsyncIterator[FakeHomeserver]:
    fake = await serve_fake_homeserver(aiohttp_server, AS_TOKEN)
    yield fake


@pytest.fixture
def deployment(workdir: Path, tcp_dsn: str, hs: FakeHomeserver) -> Iterator[Deployment]:
    bed = Deployment(workdir, tcp_dsn, hs.url)
    try:
        yield bed
    finally:
        bed.stop()


async def until(predicate: Any, what: str, bed: Deployment, within: float = DEADLINE) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached in {within:.0f} s\n{bed.logs()}")
        await asyncio.sleep(0.05)


# --- inbox: a stream of transactions, a worker killed mid-stream --------------------------------


ROOMS = 24
EVENTS_PER_ROOM = 25  # an original, then edits of it and new messages, alternating


def stream(portals: list[Any], rooms: range) -> list[dict[str, Any]]:
    """Every room's events in order, the rooms interleaved. Odd sequence numbers edit the
    room's first message (so a reordering shows in its final text), even ones are new."""
    events = []
    for seq in range(EVENTS_PER_ROOM):
        for n in rooms:
            portal = portals[n]
            original = f"$m{n}-0"
            content: dict[str, Any] = {"msgtype": "m.text", "body": f"room {n} seq {seq}"}
            if seq % 2:
                content = {
                    "msgtype": "m.text",
                    "body": f"* room {n} seq {seq}",
                    "m.new_content": dict(content),
                    "m.relates_to": {"rel_type": "m.replace", "event_id": original},
                }
            events.append(
                {
                    "type": "m.room.message",
                    "room_id": portal.room_id,
                    "sender": portal.senders[0],
                    "content": content,
                    "event_id": f"$m{n}-{seq}",
                    "origin_server_ts": 1_767_225_600_000 + seq * 1000,
                }
            )
    return events


async def send_stream(url: str, name: str, events: list[dict[str, Any]], sent: list[int]) -> None:
    """As Synapse sends: one transaction in flight, the next after the answer; a new
    connection for each, so the kernel spreads them over the intake processes."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        for n, start in enumerate(range(0, len(events), 10)):
            body = {"events": events[start : start + 10]}
            async with http.put(
                f"{url}/_matrix/app/v1/transactions/{name}-{n}",
                json=body,
                headers={"Authorization": f"Bearer {HS_TOKEN}"},
            ) as resp:
                assert resp.status == 200, await resp.text()
            sent[0] += len(body["events"])


async def test_intake_and_workers_in_separate_processes_survive_a_killed_worker(
    deployment: Deployment, tcp_dsn: str
) -> None:
    portals = make_portals(ROOMS, matrix_users=ROOMS, network_users=ROOMS)
    await insert_portals(tcp_dsn, portals, ROOMS, ROOMS)
    conn = await asyncpg.connect(tcp_dsn)
    try:
        intakes = [await deployment.start(f"intake{n}", "intake") for n in (1, 2)]
        workers = [await deployment.start(f"worker{n}", "worker") for n in (1, 2)]
        url = f"http://127.0.0.1:{deployment.intake_port}"
        half = ROOMS // 2
        streams = [stream(portals, range(0, half)), stream(portals, range(half, ROOMS))]
        total = sum(len(s) for s in streams)
        sent = [0]
        sending = [
            asyncio.create_task(send_stream(url, f"s{n}", events, sent))
            for n, events in enumerate(streams)
        ]

        async def processed_some_with_more_to_come() -> bool:
            done, pending = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE state <> 'pending'),"
                " count(*) FILTER (WHERE state = 'pending') FROM inbox"
            )
            return bool(done > total // 5 and (pending > 0 or sent[0] < total))

        await until(processed_some_with_more_to_come, "processing under way", deployment)
        workers[0].proc.send_signal(signal.SIGKILL)
        workers[0].proc.wait()
        workers.append(await deployment.start("worker3", "worker"))
        await asyncio.gather(*sending)

        async def all_processed() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) = $1 AND bool_and(state = 'processed') FROM inbox", total
                )
            )

        await until(all_processed, "every event processed", deployment)
        assert await conn.fetchval("SELECT count(*) FROM dead_letter") == 0, deployment.logs()
        # Exactly once in effect: one message per new-message event, and every edit applied
        # once, in the order sent (the last edit's text, one version per edit).
        expected_messages = (EVENTS_PER_ROOM + 1) // 2
        last_edit = max(s for s in range(EVENTS_PER_ROOM) if s % 2)
        for n, portal in enumerate(portals):
            rows = await conn.fetch(
                "SELECT event_id, content, record_version FROM message"
                " WHERE conversation_id = $1 ORDER BY sent_at, id",
                portal.conversation_id,
            )
            assert [r["event_id"] for r in rows] == [
                f"$m{n}-{seq}" for seq in range(0, EVENTS_PER_ROOM, 2)
            ]
            assert len(rows) == expected_messages
            first = rows[0]
            assert first["content"] == f"room {n} seq {last_edit}"
            assert first["record_version"] == 1 + EVENTS_PER_ROOM // 2
        # Both intake processes took transactions on the one port.
        for intake in intakes:
            assert "PUT /_matrix/app/v1/transactions/" in intake.text(), deployment.logs()
    finally:
        await conn.close()


# --- outbox: a stream towards the homeserver, the worker sending a lane killed -------------------


async def test_the_outbox_keeps_room_order_when_a_worker_dies_mid_request(
    deployment: Deployment, tcp_dsn: str, hs: FakeHomeserver
) -> None:
    rooms = [hs.add_room([BOT]) for _ in range(12)]
    victim_room = rooms[0]
    held = hs.hold_response(f"/rooms/{victim_room}/send/")
    per_room = 20
    conn = await asyncpg.connect(tcp_dsn)
    store = OutboxStore()
    try:
        workers = [await deployment.start(f"worker{n}", "worker") for n in (1, 2)]

        async def enqueue(seq: int) -> None:
            items = [
                OutboxItem(
                    room,
                    BOT,
                    Send(
                        room_id=room,
                        event_type="m.room.message",
                        content={"msgtype": "m.text", "body": f"{room} {seq}"},
                    ),
                )
                for room in rooms
            ]
            async with conn.transaction():
                await store.enqueue_many(conn, items)

        for seq in range(per_room // 2):
            await enqueue(seq)
        # The victim's lane is stuck in a request: kill the process holding its lease.
        await hs.wait_for(lambda: bool(hs.calls_to(f"/rooms/{victim_room}/send/")))
        owner = await conn.fetchval(
            "SELECT lease_owner FROM outbox_lane WHERE lane = $1", victim_room
        )
        match = re.match(r"bridge worker (\d+)\.", owner or "")
        assert match, owner
        victim = next(w for w in workers if w.proc.pid == int(match.group(1)))
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        held.set()  # the homeserver made the event; its answer reaches nobody
        workers.append(await deployment.start("worker3", "worker"))
        for seq in range(per_room // 2, per_room):
            await enqueue(seq)

        async def all_sent() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) = $1 AND bool_and(state = 'sent') FROM outbox",
                    per_room * len(rooms),
                )
            )

        await until(all_sent, "every action sent", deployment)
        for room in rooms:
            assert [e.content["body"] for e in hs.rooms[room].timeline()] == [
                f"{room} {seq}" for seq in range(per_room)
            ]
        # One transaction id per action: what came twice (the victim's request, and any other
        # the killed process had in flight) came under the same id, and made one event.
        paths = [c.path for c in hs.calls_to("/send/")]
        assert len(set(paths)) == per_room * len(rooms)
        repeated = {p for p in paths if paths.count(p) > 1}
        assert any(f"/rooms/{victim_room}/send/" in p for p in repeated)
        assert "Taking over outbox lane" in deployment.logs()
        assert await conn.fetchval("SELECT count(*) FROM dead_letter") == 0
        assert hs.violations == []
    finally:
        await conn.close()


# --- bridge run --processes N ---------------------------------------------------------------------


def start_supervisor(deployment: Deployment, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["PYTHONPATH"] = str(ROOT)
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "run",
                "-c",
                str(deployment.config),
                "--role",
                "intake",
                "--processes",
                "2",
                *args,
            ],
            cwd=deployment.workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def test_processes_share_the_port_and_one_that_dies_is_started_again(
    deployment: Deployment,
) -> None:
    log = deployment.workdir / "processes.log"
    metrics = free_port_pair()  # the children serve metrics on this port and the next
    proc = start_supervisor(deployment, log, "--metrics-listen", f"127.0.0.1:{metrics}")

    def text() -> str:
        return log.read_text(errors="replace")

    async def listening(count: int) -> bool:
        assert proc.poll() is None, text()
        return text().count("listening on") >= count

    try:
        await until(lambda: listening(2), "two processes listening", deployment)
        pids = [int(p) for p in re.findall(r"Started intake process \d \(pid (\d+)\)", text())]
        assert len(pids) == 2
        assert (
            f"Started intake process 1 (pid {pids[1]}), metrics on 127.0.0.1:{metrics + 1}"
            in text()
        )
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{deployment.intake_port}/_matrix/mau/ready"
            async with http.get(url) as resp:
                assert resp.status == 200
            # Each child counts what it answered; together, every transaction once.
            await put_transactions(deployment.intake_port, 8, "p")
            counts = [
                (await scrape(http, port)).get(OK_TRANSACTIONS, 0)
                for port in (metrics, metrics + 1)
            ]
            assert sum(counts) == 8
        os.kill(pids[0], signal.SIGKILL)
        await until(lambda: listening(3), "the killed process started again", deployment)
        assert "exited with -9" in text()
        async with aiohttp.ClientSession() as http:  # the new child took its slot's port
            assert (await scrape(http, metrics))["bridge_database_up"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, text()
        for pid in pids[1:]:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- metrics: one listener per process on one machine ----------------------------------------


def free_port_pair() -> int:
    """A free port whose successor is free too."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


async def scrape(http: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """The samples of ``/metrics`` on ``port``: {'name{labels}': value}."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def put_transactions(port: int, count: int, prefix: str) -> None:
    """``count`` empty transactions, each on a new connection (spread over the processes)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for n in range(count):
            async with http.put(
                f"http://127.0.0.1:{port}/_matrix/app/v1/transactions/{prefix}{n}",
                json={"events": []},
                headers={"Authorization": f"Bearer {HS_TOKEN}"},
            ) as resp:
                assert resp.status == 200, await resp.text()


OK_TRANSACTIONS = 'bridge_appservice_transactions_total{result="ok"}'


async def test_separate_processes_serve_metrics_on_their_own_ports_and_a_taken_one_is_named(
    deployment: Deployment,
) -> None:
    intake_metrics, worker_metrics = free_port(), free_port()
    await deployment.start("intake", "intake", "--metrics-listen", f"127.0.0.1:{intake_metrics}")
    await deployment.start("worker", "worker", "--metrics-listen", f"127.0.0.1:{worker_metrics}")
    await put_transactions(deployment.intake_port, 3, "m")
    async with aiohttp.ClientSession() as http:
        intake, worker = await scrape(http, intake_metrics), await scrape(http, worker_metrics)
    assert intake[OK_TRANSACTIONS] == 3
    assert OK_TRANSACTIONS not in worker  # the worker answers no transactions...
    assert worker["bridge_database_up"] == 1  # ...and reports the shared queues all the same
    assert 'bridge_inbox_pending{state="pending"}' in worker

    # A third process on the worker's metrics port stops at once, naming the setting.
    late = deployment.launch("late", "worker", "--metrics-listen", f"127.0.0.1:{worker_metrics}")
    assert late.proc.wait(timeout=DEADLINE) == 1
    assert (
        f"bridge: metrics.listen: 127.0.0.1:{worker_metrics} is already in use by another "
        "process; give each bridge process its own metrics port"
    ) in late.text()
    async with aiohttp.ClientSession() as http:  # the first one serves on
        assert (await scrape(http, worker_metrics))["bridge_database_up"] == 1
