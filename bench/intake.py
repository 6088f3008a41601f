"""Intake benchmark: how fast transactions from the homeserver are acknowledged.

Runs, against one private Postgres, three servers each in its own process on 127.0.0.1:

- ``bridge``: the bridge's real app (``bridge.app.init_app``) with its default inbox workers
  (plus, see ``--variants``, ``bridge-1w`` with ``appservice.inbox.workers: 1``,
  ``bridge-0w`` with no background workers (inbox, outbox): intake alone, and
  ``bridge-split``, the deployment "intake process + worker process": ``appservice.role:
  intake`` answering the homeserver, a second process with ``role: worker`` processing the
  inbox beside it on the same database; its CPU column counts the intake process;
  ``bridge-split-levers``, the same with the worker's opt-in levers on, ``bridge-split-1w``
  with one inbox worker in the worker process);
- ``mautrix``: ``mautrix.appservice.AppService`` with a no-op event handler;
- ``floor``: a bare aiohttp handler doing one ``INSERT ... SELECT FROM unnest(...)``.

and pushes Synapse-shaped transactions (100 ``m.room.message`` events over 1,000 rooms) at them
with one transaction in flight (mode A, what Synapse does) and four (mode B, a capacity probe).
Servers take turns within each round, in rotated order; each server gets the very same
transactions. Before every measured segment the bridges' inboxes are drained and Postgres is
checkpointed, so no server pays for another's backlog. Prints events/s, acknowledgement latency
and the ratios against the goals, then checks every event sent was stored.

Run from the repository root: ``python -m bench.intake [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg

from bench.common import (
    HOST,
    REPO_ROOT,
    START_TIMEOUT_S,
    BenchError,
    code_version,
    cpu_seconds,
    find_py_spy,
    free_port,
    install_interrupts,
    log,
    percentile,
    postgres_cpu_seconds,
    start_py_spy,
    stop_process,
    tail,
    with_database,
)
from bench.payload import Transaction, TransactionFactory
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.schema import ensure_schema

HS_TOKEN = "bench-hs-token"
TXN_PATH = "/_matrix/app/v1/transactions/{}"
REQUEST_TIMEOUT_S = 60.0  # Synapse's appservice request timeout
MODES = {"A": 1, "B": 4}


@dataclass(frozen=True)
class Variant:
    """A bridge variant: ``appservice.inbox.workers`` (0: none, None: the default), or the
    split deployment with ``worker_config`` merged into the worker's config."""

    workers: int | None = None
    split: bool = False
    worker_config: dict[str, Any] = field(default_factory=dict)


#: The opt-in levers of the split deployment's worker, turned on (compared in the same run).
LEVERS = {"appservice": {"worker_nice": 10, "inbox": {"synchronous_commit": False}}}
VARIANTS = {
    "1w": Variant(workers=1),
    "0w": Variant(workers=0),
    "split": Variant(split=True),
    "split-levers": Variant(split=True, worker_config=LEVERS),
    "split-1w": Variant(split=True, worker_config={"appservice": {"inbox": {"workers": 1}}}),
}
MODE_LABELS = {"A": "A: 1 in flight", "B": "B: 4 in flight"}
GOALS = {
    "bridge/mautrix events/s": (">=", 1.5),
    "bridge/floor events/s": (">=", 0.8),
    "bridge/floor p99": ("<=", 2.0),
}


@dataclass(frozen=True)
class Sizes:
    warmup: int
    rounds: int
    txns: int  # per server, mode and round
    segment_timeout: float
    drain_timeout: float
    max_seconds: float


FULL = Sizes(warmup=30, rounds=8, txns=100, segment_timeout=60, drain_timeout=120, max_seconds=900)
QUICK = Sizes(warmup=5, rounds=2, txns=15, segment_timeout=15, drain_timeout=20, max_seconds=120)


@dataclass
class Server:
    name: str
    kind: str
    workers: int | None = None
    role: str | None = None  # bridge: appservice.role
    companion: Server | None = None  # a process started beside it (split: the worker)
    config: dict[str, Any] = field(default_factory=dict)  # bridge: merged into its config
    database: str | None = None
    dsn: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    next_txn: int = 1
    events_sent: int = 0
    txns_sent: int = 0
    # mode -> per-round results
    rounds: dict[str, list[SegmentResult]] = field(default_factory=dict)

    @property
    def is_bridge(self) -> bool:
        return self.kind == "bridge"

    @property
    def has_workers(self) -> bool:
        return self.is_bridge and self.workers != 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@dataclass
class SegmentResult:
    txns: int
    events: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_s: float
    postgres_cpu_s: float
    drain_s: float | None = None
    # From the segment's start until its events were processed (split: the worker's CPU).
    worker_cpu_s: float | None = None
    postgres_cpu_to_drained_s: float | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------- processes


def start_server(server: Server, workdir: Path) -> None:
    server.port = free_port()
    server.log_path = workdir / f"{server.name}.log"
    cmd = [sys.executable, "-m", "bench.servers", server.kind, "--port", str(server.port)]
    if server.dsn:
        cmd += ["--dsn", server.dsn]
    if server.workers is not None:
        cmd += ["--workers", str(server.workers)]
    if server.role is not None:
        cmd += ["--role", server.role]
    if server.config:
        cmd += ["--config", json.dumps(server.config)]
    env = {**os.environ, "BENCH_HS_TOKEN": HS_TOKEN, "PYTHONPATH": str(REPO_ROOT)}
    with open(server.log_path, "wb") as out:
        # Own session: a Ctrl-C in the terminal reaches only this process, which then stops
        # the servers itself, in order.
        server.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.name} exited with {server.proc.returncode} on start:\n"
                f"{tail(server.log_path)}"
            )
        if "READY" in server.log_path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise BenchError(f"{server.name} did not start within {START_TIMEOUT_S} s")


# ---------------------------------------------------------------------------- load


async def run_segment(
    session: aiohttp.ClientSession,
    server: Server,
    txns: list[Transaction],
    inflight: int,
    time_limit: float,
) -> tuple[int, int, float, list[float]]:
    """PUT ``txns`` in order with ``inflight`` in flight; (txns, events, seconds, latencies)."""
    base = f"http://{HOST}:{server.port}"
    headers = {"Authorization": f"Bearer {HS_TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    events = 0
    next_index = 0
    first_txn = server.next_txn
    deadline = time.monotonic() + time_limit

    async def sender() -> None:
        nonlocal next_index, events
        while next_index < len(txns) and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            txn = txns[index]
            url = base + TXN_PATH.format(first_txn + index)
            started = time.perf_counter()
            async with session.put(url, data=txn.body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise BenchError(f"{server.name} answered {resp.status} to {url}")
            latencies.append((time.perf_counter() - started) * 1000)
            events += txn.event_count

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(inflight)))
    elapsed = time.perf_counter() - started
    sent = len(latencies)
    server.next_txn += sent
    server.txns_sent += sent
    server.events_sent += events
    return sent, events, elapsed, latencies


# Statements this program ran in each server's database, to leave out of its DB counters.
OWN_STATEMENTS: Counter[str] = Counter()


async def pending_events(conn: asyncpg.Connection, name: str) -> int:
    OWN_STATEMENTS[name] += 1
    return int(await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'"))


_DB_STATS = """
SELECT xact_commit + xact_rollback AS xacts, tup_inserted + tup_updated + tup_deleted AS writes
FROM pg_stat_database WHERE datname = $1
"""


async def database_counters(
    admin: asyncpg.Connection, servers: dict[str, Server]
) -> dict[str, dict[str, int]]:
    counters = {}
    for server in servers.values():
        if server.database:
            row = await admin.fetchrow(_DB_STATS, server.database)
            counters[server.name] = {"xacts": int(row["xacts"]), "writes": int(row["writes"])}
    return counters


async def drain(bridge_conns: dict[str, asyncpg.Connection], time_limit: float) -> dict[str, float]:
    """Wait (bounded) until every bridge's inbox has nothing pending; seconds each took."""
    started = time.monotonic()
    waited: dict[str, float] = {}
    for name, conn in bridge_conns.items():
        while await pending_events(conn, name) > 0:
            if time.monotonic() - started > time_limit:
                log(f"  {name}: inbox not drained after {time_limit:.0f} s; going on")
                break
            await asyncio.sleep(0.05)
        waited[name] = time.monotonic() - started
    return waited


# ---------------------------------------------------------------------------- statistics


def summarize(server: Server, mode: str) -> dict[str, Any]:
    results = server.rounds.get(mode, [])
    rates = [r.events_per_s for r in results]
    latencies = [x for r in results for x in r.latencies_ms]
    txns = sum(r.txns for r in results)
    drains = [r.drain_s for r in results if r.drain_s is not None]
    return {
        "rounds": len(results),
        "transactions": txns,
        "events": sum(r.events for r in results),
        "events_per_s": statistics.median(rates) if rates else float("nan"),
        "events_per_s_min": min(rates) if rates else float("nan"),
        "events_per_s_max": max(rates) if rates else float("nan"),
        "events_per_s_rounds": [round(x, 1) for x in rates],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "p99_ms_rounds": [round(percentile(r.latencies_ms, 99), 2) for r in results],
        "server_cpu_ms_per_txn": 1000 * sum(r.server_cpu_s for r in results) / max(txns, 1),
        "postgres_cpu_ms_per_txn": 1000 * sum(r.postgres_cpu_s for r in results) / max(txns, 1),
        "drain_after_s_median": statistics.median(drains) if drains else None,
        "worker_cpu_ms_per_txn": _per_txn([r.worker_cpu_s for r in results], txns),
        "postgres_cpu_to_drained_ms_per_txn": _per_txn(
            [r.postgres_cpu_to_drained_s for r in results], txns
        ),
    }


def _per_txn(seconds: list[float | None], txns: int) -> float | None:
    """Milliseconds per transaction of a measure every round has (None if one lacks it)."""
    if not seconds or any(s is None for s in seconds):
        return None
    return 1000 * sum(s for s in seconds if s is not None) / max(txns, 1)


def ratios(servers: dict[str, Server], bridge: str, mode: str) -> dict[str, float]:
    """Median over rounds of the per-round events/s ratios; p99 ratio of pooled latencies."""
    b, m, f = servers[bridge], servers["mautrix"], servers["floor"]
    n = min(len(b.rounds.get(mode, [])), len(m.rounds.get(mode, [])), len(f.rounds.get(mode, [])))
    if n == 0:
        return {}
    per_round_m = [
        b.rounds[mode][i].events_per_s / m.rounds[mode][i].events_per_s for i in range(n)
    ]
    per_round_f = [
        b.rounds[mode][i].events_per_s / f.rounds[mode][i].events_per_s for i in range(n)
    ]
    pooled_b = [x for r in b.rounds[mode][:n] for x in r.latencies_ms]
    pooled_f = [x for r in f.rounds[mode][:n] for x in r.latencies_ms]
    return {
        "bridge/mautrix events/s": statistics.median(per_round_m),
        "bridge/floor events/s": statistics.median(per_round_f),
        "bridge/floor p99": percentile(pooled_b, 99) / percentile(pooled_f, 99),
    }


def meets(name: str, value: float) -> bool:
    op, goal = GOALS[name]
    return value >= goal if op == ">=" else value <= goal


# ---------------------------------------------------------------------------- the run


async def check_storage(
    servers: dict[str, Server], session: aiohttp.ClientSession
) -> list[dict[str, Any]]:
    """Compare what each server stored (or handled) with what was sent to it."""
    checks: list[dict[str, Any]] = []

    def add(server: Server, what: str, expected: int, actual: int) -> None:
        OWN_STATEMENTS[server.name] += 1
        checks.append(
            {
                "server": server.name,
                "check": what,
                "expected": expected,
                "actual": actual,
                "ok": expected == actual,
            }
        )

    for server in servers.values():
        if server.kind == "bridge":
            assert server.dsn is not None
            conn = await asyncpg.connect(server.dsn)
            try:
                add(
                    server,
                    "inbox rows",
                    server.events_sent,
                    await conn.fetchval("SELECT count(*) FROM inbox"),
                )
                add(
                    server,
                    "distinct inbox event ids",
                    server.events_sent,
                    await conn.fetchval("SELECT count(DISTINCT event_id) FROM inbox"),
                )
                add(
                    server,
                    "appservice_txn rows",
                    server.txns_sent,
                    await conn.fetchval("SELECT count(*) FROM appservice_txn"),
                )
                add(
                    server,
                    "dead letters",
                    0,
                    await conn.fetchval("SELECT count(*) FROM dead_letter"),
                )
            finally:
                await conn.close()
        elif server.kind == "floor":
            assert server.dsn is not None
            conn = await asyncpg.connect(server.dsn)
            try:
                add(
                    server,
                    "floor_events rows",
                    server.events_sent,
                    await conn.fetchval("SELECT count(*) FROM floor_events"),
                )
            finally:
                await conn.close()
        elif server.kind == "mautrix":
            # Its handlers run as background tasks after the answer; give them a moment.
            handled = -1
            for _ in range(50):
                async with session.get(f"http://{HOST}:{server.port}/_bench/stats") as resp:
                    handled = (await resp.json())["events"]
                if handled >= server.events_sent:
                    break
                await asyncio.sleep(0.1)
            add(server, "events handed to the handler", server.events_sent, handled)
    return checks


async def benchmark(
    args: argparse.Namespace,
    sizes: Sizes,
    servers: dict[str, Server],
    admin_dsn: str,
    postmaster: int | None,
    spies: list[tuple[subprocess.Popen[bytes], str]],
) -> dict[str, Any]:
    run_started = time.monotonic()
    factory = TransactionFactory(rooms=args.rooms, events_per_txn=args.events_per_txn, seed=1)
    connector = aiohttp.TCPConnector(limit=max(MODES.values()))
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    admin = await asyncpg.connect(admin_dsn)
    before = await database_counters(admin, servers)
    bridge_conns = {
        s.name: await asyncpg.connect(s.dsn) for s in servers.values() if s.has_workers and s.dsn
    }
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def settle() -> dict[str, float]:
                waited = await drain(bridge_conns, sizes.drain_timeout)
                await admin.execute("CHECKPOINT")
                await asyncio.sleep(0.2)
                return waited

            log(f"warm-up: {sizes.warmup} transactions per server")
            warm = factory.batch(sizes.warmup)
            for server in servers.values():
                await run_segment(session, server, warm, 1, sizes.segment_timeout)
            await settle()

            if args.profile:
                py_spy = find_py_spy()
                args.profile.mkdir(parents=True, exist_ok=True)
                for name in args.profile_servers:
                    spy = start_py_spy(py_spy, servers[name].pid, args.profile / f"{name}.txt")
                    spies.append((spy, f"py-spy {name}"))
                await asyncio.sleep(1.0)

            order = list(servers.values())
            rounds_done = 0
            for round_no in range(sizes.rounds):
                if time.monotonic() - run_started > sizes.max_seconds:
                    log(
                        f"time budget of {sizes.max_seconds:.0f} s spent; stopping after "
                        f"{rounds_done} rounds"
                    )
                    break
                rotation = order[round_no % len(order) :] + order[: round_no % len(order)]
                for mode, inflight in MODES.items():
                    txns = factory.batch(sizes.txns)
                    for server in rotation:
                        await settle()
                        cpu0 = cpu_seconds(server.pid)
                        pg0 = postgres_cpu_seconds(postmaster)
                        worker = server.companion
                        worker0 = cpu_seconds(worker.pid) if worker is not None else 0.0
                        sent, events, seconds, lat = await run_segment(
                            session, server, txns, inflight, sizes.segment_timeout
                        )
                        result = SegmentResult(
                            txns=sent,
                            events=events,
                            seconds=seconds,
                            latencies_ms=lat,
                            server_cpu_s=cpu_seconds(server.pid) - cpu0,
                            postgres_cpu_s=postgres_cpu_seconds(postmaster) - pg0,
                        )
                        if server.has_workers:
                            result.drain_s = (
                                await drain(
                                    {server.name: bridge_conns[server.name]}, sizes.drain_timeout
                                )
                            )[server.name]
                            result.postgres_cpu_to_drained_s = (
                                postgres_cpu_seconds(postmaster) - pg0
                            )
                        if worker is not None:
                            result.worker_cpu_s = cpu_seconds(worker.pid) - worker0
                        server.rounds.setdefault(mode, []).append(result)
                        log(
                            f"round {round_no + 1}/{sizes.rounds} mode {mode} {server.name:>9}: "
                            f"{result.events_per_s:8.0f} events/s, "
                            f"p50 {percentile(lat, 50):6.1f} ms, p99 {percentile(lat, 99):6.1f} ms"
                            + (
                                f", inbox drained {result.drain_s:.1f} s later"
                                if result.drain_s is not None
                                else ""
                            )
                        )
                rounds_done += 1

            for spy, name in spies:
                stop_process(spy, name, signal.SIGINT)

            await settle()
            checks = await check_storage(servers, session)

        # What each server's database did over the whole run, processing included. Backends
        # report their counters when their connection closes: stop the servers first.
        for server in servers.values():
            for process in (server, server.companion):
                if process is not None and process.proc is not None:
                    stop_process(process.proc, process.name)
        for conn in bridge_conns.values():
            await conn.close()
        bridge_conns.clear()
        await asyncio.sleep(1.0)
        after = await database_counters(admin, servers)
        db_work = {}
        for name, counts in after.items():
            server = servers[name]
            xacts = counts["xacts"] - before[name]["xacts"] - OWN_STATEMENTS[name]
            db_work[name] = {
                "db_transactions": xacts,
                "db_transactions_per_txn": round(xacts / max(server.txns_sent, 1), 2),
                "row_writes_per_event": round(
                    (counts["writes"] - before[name]["writes"]) / max(server.events_sent, 1), 2
                ),
            }
    finally:
        for conn in bridge_conns.values():
            await conn.close()
        await admin.close()

    report: dict[str, Any] = {
        "benchmark": "intake",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "code": code_version(),
        "machine": machine_info(),
        "parameters": {
            "events_per_transaction": args.events_per_txn,
            "rooms": args.rooms,
            "warmup_transactions": sizes.warmup,
            "rounds": rounds_done,
            "transactions_per_server_mode_round": sizes.txns,
            "modes": {k: f"{v} in flight" for k, v in MODES.items()},
        },
        "results": {
            name: {mode: summarize(server, mode) for mode in MODES}
            for name, server in servers.items()
        },
        "ratios": {},
        "goals": {k: f"{op} {goal}" for k, (op, goal) in GOALS.items()},
        "checks": checks,
        "database_work": db_work,
        "seconds": round(time.monotonic() - run_started, 1),
    }
    for name, server in servers.items():
        if server.is_bridge:
            report["ratios"][name] = {mode: ratios(servers, name, mode) for mode in MODES}
    return report


def machine_info() -> dict[str, Any]:
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
    }


# ---------------------------------------------------------------------------- output


def print_table(report: dict[str, Any], out: TextIO) -> None:
    params = report["parameters"]
    machine = report["machine"]
    w = max(9, *(len(name) for name in report["results"]))  # server name column
    rw = max(26, *(len(k) - len("bridge") + len(b) for b in report["ratios"] for k in GOALS))
    print(
        f"Intake benchmark, {report['date']}, code {report['code'] or '?'}: "
        f"{params['events_per_transaction']} m.room.message "
        f"events per transaction over {params['rooms']} rooms; {params['rounds']} rounds x "
        f"{params['transactions_per_server_mode_round']} transactions per server and mode "
        f"(after {params['warmup_transactions']} warm-up); {machine['nproc']} CPUs, "
        f"{machine['memory_gib']} GiB, Python {machine['python']}",
        file=out,
    )
    print(file=out)
    header = (
        f"| {'mode':<15} | {'server':<{w}} | {'events/s (median)':>17} | {'min-max':>13} | "
        f"{'p50 ms':>7} | {'p99 ms':>7} | {'server CPU ms/txn':>17} | "
        f"{'PG CPU ms/txn':>13} |"
    )
    print(header, file=out)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|", file=out)
    for mode in MODES:
        for name, per_mode in report["results"].items():
            r = per_mode[mode]
            span = f"{r['events_per_s_min']:.0f}-{r['events_per_s_max']:.0f}"
            print(
                f"| {MODE_LABELS[mode]:<15} | {name:<{w}} | {r['events_per_s']:>17.0f} | "
                f"{span:>13} | {r['p50_ms']:>7.1f} | {r['p99_ms']:>7.1f} | "
                f"{r['server_cpu_ms_per_txn']:>17.1f} | {r['postgres_cpu_ms_per_txn']:>13.1f} |",
                file=out,
            )
    print(file=out)
    print(
        f"| {'ratio':<{rw}} | {'goal':<6} | "
        + " | ".join(f"{MODE_LABELS[m]:<15}" for m in MODES)
        + " |",
        file=out,
    )
    print(f"|{'-' * (rw + 2)}|{'-' * 8}|" + "|".join("-" * 17 for _ in MODES) + "|", file=out)
    for bridge, per_mode in report["ratios"].items():
        for key in GOALS:
            label = key.replace("bridge", bridge, 1)
            cells = []
            for mode in MODES:
                value = per_mode[mode].get(key)
                if value is None:
                    cells.append(f"{'n/a':<15}")
                else:
                    mark = "ok" if meets(key, value) else "MISSED"
                    cells.append(f"{f'{value:.2f} {mark}':<15}")
            print(
                f"| {label:<{rw}} | {report['goals'][key]:<6} | " + " | ".join(cells) + " |",
                file=out,
            )
    print(file=out)
    split = [
        (name, mode, per_mode[mode])
        for name, per_mode in report["results"].items()
        for mode in MODES
        if per_mode[mode].get("worker_cpu_ms_per_txn") is not None
    ]
    if split:
        print("CPU per transaction, from a segment's start until it was processed:", file=out)
        for name, mode, r in split:
            print(
                f"  {name:<{w}} mode {mode}: intake process {r['server_cpu_ms_per_txn']:.1f} ms, "
                f"worker process {r['worker_cpu_ms_per_txn']:.1f} ms, PostgreSQL "
                f"{r['postgres_cpu_to_drained_ms_per_txn']:.1f} ms",
                file=out,
            )
        print(file=out)
    print("Database work over the whole run (warm-up and inbox processing included):", file=out)
    for name, work in report["database_work"].items():
        print(
            f"  {name:<{w}} {work['db_transactions_per_txn']:7.2f} DB transactions per "
            f"homeserver transaction, {work['row_writes_per_event']:5.2f} row writes per event",
            file=out,
        )
    print(file=out)
    failed = [c for c in report["checks"] if not c["ok"]]
    for check in report["checks"]:
        status = "ok" if check["ok"] else "FAILED"
        print(
            f"check {check['server']}: {check['check']}: {check['actual']} "
            f"(expected {check['expected']}) {status}",
            file=out,
        )
    print(
        f"\n{'all checks passed' if not failed else f'{len(failed)} check(s) FAILED'}; "
        f"{report['seconds']} s",
        file=out,
    )


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON on stdout (progress stays on stderr)",
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 8, quick 2)")
    parser.add_argument(
        "--txns", type=int, help="transactions per server, mode and round (default 100, quick 15)"
    )
    parser.add_argument("--warmup", type=int, help="warm-up transactions per server")
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--events-per-txn", type=int, default=100)
    parser.add_argument(
        "--variants",
        default="1w,0w,split",
        help="comma-separated bridge variants to run as well: 1w (one inbox "
        "worker), 0w (no background workers: intake alone, a diagnostic), split (an intake "
        "process and a worker process), split-levers (the same, the worker at nice 10 and "
        "processing commits not waiting for the disk), split-1w (the worker with one inbox "
        "worker); default 1w,0w,split; '' for none",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record py-spy raw profiles of the measured phase into DIR",
    )
    parser.add_argument(
        "--profile-servers",
        default="bridge",
        help="comma-separated servers to profile (default: bridge)",
    )
    args = parser.parse_args(argv)
    args.profile_servers = [s for s in args.profile_servers.split(",") if s]
    args.variants = [v for v in args.variants.split(",") if v]
    if set(args.variants) - set(VARIANTS):
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
    for name, value in (
        ("--rounds", args.rounds),
        ("--txns", args.txns),
        ("--rooms", args.rooms),
        ("--events-per-txn", args.events_per_txn),
    ):
        if value is not None and not 1 <= value <= 100_000:
            parser.error(f"{name} must be between 1 and 100000")
    if not 1 <= args.events_per_txn <= 100:
        parser.error("--events-per-txn must be between 1 and 100 (Synapse's cap)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_interrupts()  # Ctrl-C and SIGTERM end the run through the clean-up below
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        warmup=args.warmup if args.warmup is not None else base.warmup,
        rounds=args.rounds or base.rounds,
        txns=args.txns or base.txns,
        segment_timeout=base.segment_timeout,
        drain_timeout=base.drain_timeout,
        max_seconds=base.max_seconds,
    )
    servers: dict[str, Server] = {"bridge": Server("bridge", "bridge", database="bench_bridge")}
    for variant in args.variants:
        name = f"bridge-{variant}"
        spec = VARIANTS[variant]
        database = f"bench_bridge_{variant.replace('-', '_')}"
        servers[name] = Server(name, "bridge", workers=spec.workers, database=database)
        if spec.split:
            servers[name].role = "intake"
            servers[name].companion = Server(
                f"{name}-worker", "bridge", role="worker", config=spec.worker_config
            )
    servers["mautrix"] = Server("mautrix", "mautrix")
    servers["floor"] = Server("floor", "floor", database="bench_floor")
    unknown = set(args.profile_servers) - set(servers)
    if args.profile and unknown:
        raise SystemExit(f"unknown server(s) to profile: {', '.join(sorted(unknown))}")

    root = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    root.chmod(0o711)  # as root, Postgres runs as an unprivileged user that must reach it
    pg = EmbeddedPostgres(root / "pg", database="bench")
    spies: list[tuple[subprocess.Popen[bytes], str]] = []
    status = 1
    try:
        log("starting Postgres")
        admin_dsn = pg.start()

        async def prepare() -> None:
            conn = await asyncpg.connect(admin_dsn)
            try:
                for server in servers.values():
                    if server.database:
                        await conn.execute(f'CREATE DATABASE "{server.database}"')
                        server.dsn = with_database(admin_dsn, server.database)
            finally:
                await conn.close()
            for server in servers.values():
                if server.is_bridge and server.dsn:
                    await ensure_schema(server.dsn, migrate=True)

        asyncio.run(prepare())
        for server in servers.values():
            log(f"starting {server.name}")
            start_server(server, root)
            if server.companion is not None:
                server.companion.dsn = server.dsn
                start_server(server.companion, root)
        report = asyncio.run(benchmark(args, sizes, servers, admin_dsn, pg.postmaster_pid, spies))
        if args.json:
            json.dump(report, sys.stdout, indent=2)
            print()
        else:
            print_table(report, sys.stdout)
        status = 0 if all(c["ok"] for c in report["checks"]) else 1
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except BenchError as exc:
        log(f"error: {exc}")
    finally:
        # Clean up without being interrupted again (every step is bounded in time).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for spy, name in spies:
            stop_process(spy, name, signal.SIGINT)
        for server in [s for top in servers.values() for s in (top, top.companion) if s]:
            if server.proc is not None:
                stop_process(server.proc, server.name)
                if server.proc.returncode not in (0, None) and status == 0:
                    log(
                        f"{server.name} exited with {server.proc.returncode}:\n"
                        f"{tail(server.log_path)}"
                    )
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
