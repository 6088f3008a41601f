"""Memory benchmark: peak RSS of the bridge daemon while a million events go through it.

Starts the daemon as operators do, ``python -m bridge run -c config.yaml`` with ``database:
embedded`` (its own PostgreSQL, in a temporary directory), and pushes Synapse-shaped
transactions at its transaction endpoint as ``bench/intake.py`` does in mode A (100
``m.room.message`` events over 1,000 rooms each, one in flight); its inbox workers process
them meanwhile (these rooms are not portals: each event is looked at and marked ignored).
Measured from ``/proc/<pid>/status`` of the daemon's Python process only (not its
PostgreSQL): ``VmHWM`` (peak resident set) and ``VmRSS``, after start, at checkpoints, and
once the inbox is drained at the end.

Reference, same run: ``bench.servers floor`` (a bare aiohttp handler, one ``INSERT ... SELECT
FROM unnest(...)`` per transaction, no processing) fed the very same transactions, chunk by
chunk in alternation with the bridge, on a database of the daemon's own PostgreSQL.

If the time budget runs out before all events are sent, the report says so and extrapolates
``VmRSS`` linearly from the second half of the checkpoints.

Then, on the same daemon, a whole list (``pageNumber=0``) of 100,000 messages against three
1,000-row pages (``bench/memory_stream.py``; ``--stream-rows 0`` leaves it out).

Run from the repository root: ``python -m bench.memory [--quick] [--events N] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
import yaml

from bench.common import (
    HOST,
    BenchError,
    Child,
    free_port,
    header_line,
    http_status,
    ignore_interrupts,
    install_interrupts,
    log,
    machine_facts,
    markdown_table,
    slope,
    workdir,
)
from bench.memory_stream import JWT_SECRET, measure_stream, print_stream, proc_status
from bench.payload import TransactionFactory

GOAL_MB = 200.0
TXN_PATH = "/_matrix/app/v1/transactions/{}"
CHUNK_EVENTS = 50_000
CHECKPOINTS = (100_000, 250_000, 500_000, 1_000_000)


def bridge_config(root: Path, port: int, hs_token: str) -> Path:
    data = {
        "homeserver": {"address": "http://127.0.0.1:9", "domain": "localhost"},
        "appservice": {
            "address": f"http://{HOST}:{port}",
            "hostname": HOST,
            "port": port,
            "id": "bench-memory",
            "bot_username": "_pn_bot",
            "as_token": secrets.token_urlsafe(32),
            "hs_token": hs_token,
            "database": "embedded",
            "embedded_data_dir": "data/postgres",
        },
        "bridge": {"permissions": {"*": "block", "localhost": "user"}},
        "api": {"jwt": {"secret": JWT_SECRET}},
        "logging": {"level": "INFO"},
    }
    bridge_dir = root / "bridge"
    bridge_dir.mkdir()
    bridge_dir.chmod(0o711)
    path = bridge_dir / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def embedded_dsn(config_path: Path) -> str:
    """The daemon's embedded PostgreSQL, from its ``postmaster.pid`` (port, socket dir)."""
    lines = (config_path.parent / "data/postgres/postmaster.pid").read_text().split("\n")
    return f"postgresql://postgres@/bridge?host={lines[4].strip()}&port={lines[3].strip()}"


async def push(
    session: aiohttp.ClientSession, port: int, token: str, bodies: list[bytes], first: int
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for n, body in enumerate(bodies):
        url = f"http://{HOST}:{port}" + TXN_PATH.format(first + n)
        async with session.put(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise BenchError(f"PUT {url}: HTTP {resp.status}")


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    run_started = time.monotonic()
    facts = machine_facts()
    hs_token = secrets.token_urlsafe(32)
    port, floor_port = free_port(), free_port()
    config = bridge_config(root, port, hs_token)
    bridge = Child(
        "bridge",
        [sys.executable, "-m", "bridge", "run", "-c", str(config)],
        root / "bridge.log",
    )
    floor: Child | None = None
    samples: list[dict[str, Any]] = []
    floor_samples: list[dict[str, Any]] = []
    try:
        log("starting the daemon (bridge run, embedded PostgreSQL)")
        bridge.start(
            180, ready=lambda: http_status(f"http://{HOST}:{port}/_matrix/mau/ready") == 200
        )
        dsn = embedded_dsn(config)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute("CREATE DATABASE bench_floor")
            pg = str(await admin.fetchval("SHOW server_version"))
        finally:
            await admin.close()
        floor_dsn = dsn.replace("/bridge?", "/bench_floor?")
        if not args.no_floor:
            floor = Child.module(
                "floor",
                "bench.servers",
                ["floor", "--port", str(floor_port), "--dsn", floor_dsn],
                root,
                env={"BENCH_HS_TOKEN": hs_token},
            )
            floor.start()
        start = proc_status(bridge.pid)
        samples.append({"events": 0, "seconds": 0.0, **start, "pending": 0})
        if floor is not None:
            floor_samples.append({"events": 0, **proc_status(floor.pid)})
        log(f"after start: bridge VmRSS {start['VmRSS']:.1f} MiB")
        factory = TransactionFactory(seed=3)
        sent = 0
        conn = await asyncpg.connect(dsn)
        timeout = aiohttp.ClientTimeout(total=60)
        pushing_s = 0.0
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1), timeout=timeout
        ) as session:
            while sent < args.events:
                if time.monotonic() - run_started > args.max_seconds:
                    log(f"time budget of {args.max_seconds:.0f} s spent after {sent} events")
                    break
                chunk = min(CHUNK_EVENTS, args.events - sent)
                bodies = [t.body for t in factory.batch(chunk // 100)]
                started = time.monotonic()
                await push(session, port, hs_token, bodies, sent // 100 + 1)
                pushing_s += time.monotonic() - started
                if floor is not None:
                    await push(session, floor_port, hs_token, bodies, sent // 100 + 1)
                sent += chunk
                pending = int(
                    await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'")
                )
                status = proc_status(bridge.pid)
                samples.append(
                    {
                        "events": sent,
                        "seconds": round(time.monotonic() - run_started, 1),
                        **status,
                        "pending": pending,
                    }
                )
                if floor is not None:
                    floor_samples.append({"events": sent, **proc_status(floor.pid)})
                log(
                    f"{sent:>9} events: bridge VmRSS {status['VmRSS']:6.1f} MiB, VmHWM "
                    f"{status['VmHWM']:6.1f} MiB, inbox backlog {pending}"
                    + (
                        f"; floor VmHWM {floor_samples[-1]['VmHWM']:.1f} MiB"
                        if floor is not None
                        else ""
                    )
                )
            log("waiting for the inbox to drain")
            drained_started = time.monotonic()
            pending = 1
            while time.monotonic() - drained_started < args.drain_timeout:
                pending = int(
                    await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'")
                )
                if pending == 0:
                    break
                await asyncio.sleep(1.0)
            drained = {
                "events": sent,
                "seconds": round(time.monotonic() - run_started, 1),
                **proc_status(bridge.pid),
                "pending": pending,
                "drained": pending == 0,
            }
            counts = dict(
                await conn.fetchrow(
                    """
                    SELECT (SELECT count(*) FROM inbox) AS inbox,
                           (SELECT count(*) FROM inbox WHERE state = 'ignored') AS ignored,
                           (SELECT count(*) FROM dead_letter) AS dead_letters
                    """
                )
            )
        await conn.close()
        stream = None
        if args.stream_rows:
            stream = await measure_stream(bridge.pid, port, dsn, args.stream_rows)
    finally:
        if floor is not None:
            floor.stop()
        bridge.stop()
    extrapolated = None
    if sent < args.events and len(samples) >= 4:
        tail = samples[len(samples) // 2 :]
        per_event = slope([(s["events"], s["VmRSS"]) for s in tail])
        extrapolated = {
            "events": args.events,
            "VmRSS": samples[-1]["VmRSS"] + per_event * (args.events - sent),
            "MiB_per_100k_events": per_event * 100_000,
        }
    return {
        "benchmark": "memory",
        "machine": facts,
        "postgres": pg,
        "events_target": args.events,
        "events_sent": sent,
        "intake_events_per_s": sent / pushing_s if pushing_s else None,
        "samples": samples,
        "drained": drained,
        "floor": floor_samples,
        "counts": counts,
        "extrapolated": extrapolated,
        "stream": stream,
        "seconds": round(time.monotonic() - run_started, 1),
    }


def _mib(value: float) -> str:
    return f"{value:.1f}"


def print_report(report: dict[str, Any], out: TextIO) -> None:
    print(header_line("Memory benchmark", report["machine"], report["postgres"]), file=out)
    rate = report["intake_events_per_s"]
    print(
        f"{report['events_sent']} of {report['events_target']} events pushed (mode A, "
        f"{rate:.0f} events/s to the bridge); Python process of `bridge run` only\n",
        file=out,
    )
    floor = {s["events"]: s for s in report["floor"]}
    shown = [
        s
        for s in report["samples"]
        if s["events"] == 0 or s["events"] in CHECKPOINTS or s is report["samples"][-1]
    ]
    rows = []
    for s in shown:
        f = floor.get(s["events"])
        rows.append(
            [
                f"{s['events']:,}",
                _mib(s["VmRSS"]),
                _mib(s["VmHWM"]),
                s["pending"],
                _mib(f["VmHWM"]) if f else "n/a",
            ]
        )
    d = report["drained"]
    rows.append(
        [
            f"{d['events']:,}, inbox drained"
            if d["drained"]
            else f"{d['events']:,}, {d['pending']} still pending",
            _mib(d["VmRSS"]),
            _mib(d["VmHWM"]),
            d["pending"],
            "n/a",
        ]
    )
    markdown_table(
        ["events", "bridge VmRSS MiB", "bridge VmHWM MiB", "inbox backlog", "floor VmHWM MiB"],
        rows,
        out,
    )
    peak = max(max(s["VmHWM"] for s in report["samples"]), d["VmHWM"])
    peak_mb = peak * 1.048576
    verdict = "ok" if peak_mb < GOAL_MB else f"MISSED by {peak_mb - GOAL_MB:.0f} MB"
    print(
        f"\nGoal: peak RSS under {GOAL_MB:.0f} MB: {peak:.1f} MiB ({peak * 1.048576:.1f} MB), "
        f"{verdict}",
        file=out,
    )
    if report["extrapolated"]:
        e = report["extrapolated"]
        print(
            f"Extrapolated (not measured) to {e['events']:,} events: VmRSS {e['VmRSS']:.1f} MiB "
            f"({e['MiB_per_100k_events']:+.2f} MiB per 100k events)",
            file=out,
        )
    c = report["counts"]
    ok = c["inbox"] == report["events_sent"] and c["dead_letters"] == 0
    print(
        f"check: inbox holds {c['inbox']} of {report['events_sent']} events, "
        f"{c['dead_letters']} dead letters {'ok' if ok else 'FAILED'}",
        file=out,
    )
    if report["stream"]:
        print_stream(report["stream"], out, markdown_table)
    print(f"{report['seconds']} s", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="100,000 events, ~1 minute")
    parser.add_argument("--events", type=int, help="events to push (1000000, quick 100000)")
    parser.add_argument("--no-floor", action="store_true", help="leave out the reference")
    parser.add_argument("--max-seconds", type=float, help="time budget for pushing (default 900)")
    parser.add_argument(
        "--stream-rows",
        type=int,
        default=100_000,
        help="messages of the whole-list (pageNumber=0) step (default 100000; 0: leave it out)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    args.events = args.events or (100_000 if args.quick else 1_000_000)
    if not CHUNK_EVENTS <= args.events <= 10_000_000 or args.events % CHUNK_EVENTS:
        parser.error(f"--events must be a multiple of {CHUNK_EVENTS} up to 10000000")
    args.max_seconds = args.max_seconds or (240.0 if args.quick else 900.0)
    args.drain_timeout = 120.0 if args.quick else 300.0
    install_interrupts()
    status = 1
    with workdir("bridge-bench-memory-") as root:
        try:
            report = asyncio.run(run(args, root))
            if args.json:
                json.dump(report, sys.stdout, indent=2, default=str)
                print()
            else:
                print_report(report, sys.stdout)
            status = 0
        except KeyboardInterrupt:
            log("interrupted")
            status = 130
        except BenchError as exc:
            log(f"error: {exc}")
        finally:
            ignore_interrupts()
    return status


if __name__ == "__main__":
    sys.exit(main())
