"""Delivery benchmark: a REST message create until the homeserver's ``/send`` completed.

Runs on 127.0.0.1: a local Synapse (SQLite, the bridge's registration loaded, rate limits
lifted, as the end-to-end test bed runs it), a private Postgres, and the bridge's real app
(``bench.apps bridge --timing --trace-sends``: default config, outbox sender with 4 workers)
pointed at that Synapse. Set-up goes through the bridge itself: a network user creates a
group conversation with another network user and a Matrix user (``POST /messaging-api/v1/
conversations``); the bridge's outbox creates the portal room, invites and joins the ghosts.

Then, alternately (in alternating order), ``--requests`` times each, spaced so that one is
finished before the next starts:

- **bridge**: ``POST /messaging-api/v1/messages`` as that network user; timestamps: the
  request sent (t0) and answered (t1) in this process; the bridge's ``/send`` of the message
  by the sender's ghost started and completed (traced around ``Intents.send`` in the bridge's
  process, ``time.monotonic()``, which is system-wide); Synapse's own processing time of that
  ``/send`` (its access log);
- **direct**: the reference, the same ghost's ``PUT /_matrix/client/v3/rooms/{room}/send/
  m.room.message/{txnId}?user_id=<ghost>`` with the as_token, from this process (its round
  trip, and Synapse's processing time from its log).

The bridge's share = (``/send`` completed - t0) - the direct ``/send``'s round trip, paired with
the direct send next to it; also shown split into the REST call (t1 - t0), the wait for the
outbox sender (``/send`` started - t1) and the ``/send`` itself.

Run from the repository root: ``python -m bench.delivery [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
import yaml

from bench.apps import bridge_config_dict
from bench.common import (
    HOST,
    BenchError,
    Child,
    Cluster,
    child_env,
    free_port,
    header_line,
    http_status,
    ignore_interrupts,
    install_interrupts,
    log,
    machine_facts,
    markdown_table,
    server_version,
    stats,
    workdir,
)
from bridge.cli_token import mint_token
from bridge.config import parse_config
from bridge.db.schema import ensure_schema
from bridge.local.synapse import SynapseFiles, homeserver_config, write_config
from bridge.registration import build_registration

DOMAIN = "localhost"
JWT_SECRET = "bench-jwt-secret-of-at-least-32-bytes!"
GOAL_SHARE_MS = 10.0
SETUP_TIMEOUT_S = 90.0
SYNAPSE_START_S = 120.0


# ---------------------------------------------------------------------------- Synapse


_PROCESSED = re.compile(r'Processed request: ([\d.]+)sec/.*?"PUT (\S+) HTTP')


def synapse_send_times(log_path: Path) -> dict[str, float]:
    """Synapse's processing time (ms) of each ``/send``, by transaction id (its access log)."""
    times: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        m = _PROCESSED.search(line)
        if m and "/send/" in m.group(2):
            txn = m.group(2).split("/send/", 1)[1].split("/", 1)[1].split("?", 1)[0]
            times[txn] = float(m.group(1)) * 1000
    return times


# ---------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, cluster: Cluster, root: Path) -> dict[str, Any]:
    run_started = time.monotonic()
    facts = machine_facts()
    pg = await server_version(cluster.admin_dsn)
    dsn = await cluster.create_database("delivery")
    await ensure_schema(dsn, migrate=True)

    bridge_port, synapse_port = free_port(), free_port()
    synapse_url = f"http://{HOST}:{synapse_port}"
    as_token, hs_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    extra = {
        "homeserver": {"address": synapse_url, "domain": DOMAIN},
        "appservice": {"as_token": as_token, "id": "bench-delivery"},
        "api": {"jwt": {"secret": JWT_SECRET}},
    }
    config = parse_config(bridge_config_dict(hs_token, bridge_port, extra))
    files = SynapseFiles(root / "synapse")
    hs_dir, hs_config = files.directory, files.config
    hs_dir.mkdir()
    registration = hs_dir / "registration.yaml"
    registration.write_text(yaml.safe_dump(build_registration(config)))
    # A Synapse on 127.0.0.1 with SQLite, the bridge registered, limits lifted.
    await asyncio.to_thread(
        write_config,
        files,
        homeserver_config(
            files, server_name=DOMAIN, port=synapse_port, app_service_config_files=[registration]
        ),
    )
    env = child_env()
    synapse = Child(
        "synapse",
        [sys.executable, "-m", "synapse.app.homeserver", "-c", str(hs_config)],
        root / "synapse.log",
        env=env,
    )
    bridge = Child.module(
        "bridge-delivery",
        "bench.apps",
        [
            "bridge",
            "--port",
            str(bridge_port),
            "--dsn",
            dsn,
            "--timing",
            "--trace-sends",
            "--config",
            json.dumps(extra),
        ],
        root,
        env={**env, "BENCH_HS_TOKEN": hs_token},
    )
    try:
        log("starting Synapse")
        synapse.start(SYNAPSE_START_S, ready=lambda: http_status(f"{synapse_url}/health") == 200)
        script = Path(sys.executable).with_name("register_new_matrix_user")
        register = (
            [str(script)]
            if script.exists()
            else [sys.executable, "-m", "synapse._scripts.register_new_matrix_user"]
        )
        await asyncio.to_thread(
            subprocess.run,
            [
                *register,
                "-c",
                str(hs_config),
                "-u",
                "alice",
                "-p",
                secrets.token_urlsafe(12),
                "--no-admin",
                synapse_url,
            ],
            cwd=hs_dir,
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
        log("starting the bridge")
        bridge.start()
        return await measure(
            args,
            config,
            dsn,
            bridge_port,
            synapse_url,
            as_token,
            synapse,
            facts,
            pg,
            run_started,
        )
    finally:
        bridge.stop()
        synapse.stop()


async def measure(
    args: argparse.Namespace,
    config: Any,
    dsn: str,
    bridge_port: int,
    synapse_url: str,
    as_token: str,
    synapse: Child,
    facts: dict[str, Any],
    pg: str,
    run_started: float,
) -> dict[str, Any]:
    sender, other, alice = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ghost = f"@_pn_{sender}:{DOMAIN}"
    conn = await asyncpg.connect(dsn)
    bridge_url = f"http://{HOST}:{bridge_port}"
    token = mint_token(config, sender, ttl=3600)
    rest_headers = {"Authorization": f"Bearer {token}"}
    as_headers = {"Authorization": f"Bearer {as_token}"}
    try:
        await conn.executemany(
            "INSERT INTO network_user (id, display_name, matrix_user_id) VALUES ($1, $2, $3)",
            [
                (sender, "Sender", None),
                (other, "Other", None),
                (alice, "alice", f"@alice:{DOMAIN}"),
            ],
        )
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            # The conversation, its portal room and the ghosts' joins, all by the bridge.
            body = {
                "isGroup": True,
                "participantIds": [str(sender), str(other), str(alice)],
                "title": "Delivery benchmark",
            }
            async with session.post(
                f"{bridge_url}/messaging-api/v1/conversations", json=body, headers=rest_headers
            ) as resp:
                if resp.status != 201:
                    raise BenchError(f"create conversation: {resp.status} {await resp.text()}")
                conversation = uuid.UUID((await resp.json())["conversation"]["id"])

            async def portal_ready() -> str | None:
                row = await conn.fetchrow(
                    """
                    SELECT (SELECT room_id FROM portal WHERE conversation_id = $1) AS room,
                           (SELECT count(*) FROM outbox WHERE state = 'pending') AS pending,
                           (SELECT count(*) FROM outbox WHERE state = 'dead') AS dead
                    """,
                    conversation,
                )
                if row["dead"]:
                    raise BenchError(f"the bridge dead-lettered {row['dead']} set-up action(s)")
                return row["room"] if row["room"] and row["pending"] == 0 else None

            room = None
            deadline = time.monotonic() + SETUP_TIMEOUT_S
            while room is None and time.monotonic() < deadline:
                room = await portal_ready()
                await asyncio.sleep(0.2)
            if room is None:
                raise BenchError("the portal room was not set up in time")
            log(f"portal room ready: {room}")

            async def via_bridge(n: int) -> dict[str, Any]:
                payload = {
                    "conversationId": str(conversation),
                    "content": f"delivery benchmark message {n}: " + "lorem ipsum " * 6,
                }
                t0 = time.monotonic()
                async with session.post(
                    f"{bridge_url}/messaging-api/v1/messages", json=payload, headers=rest_headers
                ) as resp:
                    data = await resp.json()
                    t1 = time.monotonic()
                    if resp.status != 201:
                        raise BenchError(f"create message: {resp.status} {data}")
                    server_ms = float(resp.headers["X-Bench-Server-Ms"])
                return {
                    "message_id": data["message"]["id"],
                    "t0": t0,
                    "t1": t1,
                    "rest_server_ms": server_ms,
                }

            async def direct(n: int) -> dict[str, Any]:
                txn = f"bench-direct-{n}-{secrets.token_hex(4)}"
                content = {
                    "msgtype": "m.text",
                    "body": f"direct benchmark message {n}: " + "lorem ipsum " * 6,
                    "m.mentions": {},
                }
                url = f"{synapse_url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"
                t0 = time.monotonic()
                async with session.put(
                    url, json=content, headers=as_headers, params={"user_id": ghost}
                ) as resp:
                    await resp.read()
                    t1 = time.monotonic()
                    if resp.status != 200:
                        raise BenchError(f"direct send: {resp.status} {await resp.text()}")
                return {"txn": txn, "ms": (t1 - t0) * 1000}

            log(f"warm-up: {args.warmup} of each")
            for n in range(args.warmup):
                await via_bridge(-1 - n)
                await asyncio.sleep(args.gap)
                await direct(-1 - n)
                await asyncio.sleep(args.gap / 2)
            async with session.get(f"{bridge_url}/_bench/sends") as resp:
                await resp.read()  # forget the warm-up's traces

            bridge_runs: list[dict[str, Any]] = []
            direct_runs: list[dict[str, Any]] = []
            log(f"measuring: {args.requests} of each, alternating")
            for n in range(args.requests):
                if time.monotonic() - run_started > args.max_seconds:
                    log("time budget spent; stopping")
                    break
                order = (via_bridge, direct) if n % 2 == 0 else (direct, via_bridge)
                for step in order:
                    result = await step(n)
                    (bridge_runs if step is via_bridge else direct_runs).append(result)
                    # Let it finish (outbox, Synapse, the echo to the bridge) before the next.
                    await asyncio.sleep(args.gap if step is via_bridge else args.gap / 2)
            await asyncio.sleep(1.0)
            async with session.get(f"{bridge_url}/_bench/sends") as resp:
                traces = await resp.json()
        rows = await conn.fetch(
            """
            SELECT id, state, payload ->> 'message_id' AS message_id, created_at, sent_at
            FROM outbox WHERE action = 'send' AND payload ? 'message_id'
            """
        )
    finally:
        await conn.close()

    by_message = {r["message_id"]: r for r in rows}
    by_outbox = {}
    for trace in traces:
        m = re.match(r"bridge-outbox-(\d+)-", trace["txn_id"])
        if m:
            by_outbox[int(m.group(1))] = trace
    synapse_ms = synapse_send_times(synapse.log_path)
    samples: list[dict[str, float]] = []
    missing = 0
    for run_, ref in zip(bridge_runs, direct_runs, strict=False):
        row = by_message.get(run_["message_id"])
        trace = by_outbox.get(row["id"]) if row is not None else None
        if row is None or trace is None or row["state"] != "sent":
            missing += 1
            continue
        e2e = (trace["end"] - run_["t0"]) * 1000
        samples.append(
            {
                "rest_ms": (run_["t1"] - run_["t0"]) * 1000,
                "rest_server_ms": run_["rest_server_ms"],
                "pickup_ms": (trace["start"] - run_["t1"]) * 1000,
                "send_ms": (trace["end"] - trace["start"]) * 1000,
                "e2e_ms": e2e,
                "direct_ms": ref["ms"],
                "share_ms": e2e - ref["ms"],
                "synapse_bridge_ms": synapse_ms.get(trace["txn_id"], float("nan")),
                "synapse_direct_ms": synapse_ms.get(ref["txn"], float("nan")),
            }
        )
    keys = list(samples[0]) if samples else []
    summary = {k: stats([s[k] for s in samples if s[k] == s[k]]) for k in keys}
    return {
        "benchmark": "delivery",
        "machine": facts,
        "postgres": pg,
        "requests": len(samples),
        "missing": missing,
        "gap_s": args.gap,
        "summary": summary,
        "share_median_ms": statistics.median(s["share_ms"] for s in samples) if samples else None,
        "seconds": round(time.monotonic() - run_started, 1),
    }


LABELS = {
    "e2e_ms": "REST create → bridge's /send completed",
    "rest_ms": "  REST create (client round trip)",
    "rest_server_ms": "  REST create (server-side handling)",
    "pickup_ms": "  REST answered → outbox /send started",
    "send_ms": "  the bridge's /send (request round trip)",
    "direct_ms": "direct /send by the ghost (reference)",
    "share_ms": "bridge's share: end-to-end - direct /send (paired)",
    "synapse_bridge_ms": "Synapse processing of the bridge's /send (its log)",
    "synapse_direct_ms": "Synapse processing of the direct /send (its log)",
}


def print_report(report: dict[str, Any], out: TextIO) -> None:
    print(header_line("Delivery benchmark", report["machine"], report["postgres"]), file=out)
    print(
        f"{report['requests']} messages each way, one at a time ({report['gap_s']} s apart); "
        f"{report['missing']} not traced\n",
        file=out,
    )
    s = report["summary"]
    markdown_table(
        ["what", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [
            [label, s[k]["p50"], s[k]["p90"], s[k]["p99"], s[k]["max"]]
            for k, label in LABELS.items()
            if k in s
        ],
        out,
    )
    share = report["share_median_ms"]
    if share is not None:
        verdict = "ok" if share < GOAL_SHARE_MS else f"MISSED by {share - GOAL_SHARE_MS:.1f} ms"
        print(
            f"\nGoal: the bridge adds under {GOAL_SHARE_MS:.0f} ms (median): "
            f"{share:.1f} ms, {verdict}",
            file=out,
        )
    print(f"{report['seconds']} s", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--requests", type=int, help="messages each way (200, quick 30)")
    parser.add_argument(
        "--gap",
        type=float,
        default=0.25,
        help="seconds after a bridge message before the next request",
    )
    args = parser.parse_args(argv)
    args.requests = args.requests or (30 if args.quick else 200)
    args.warmup = 3 if args.quick else 10
    args.max_seconds = 120.0 if args.quick else 400.0
    if not 1 <= args.requests <= 5000 or not 0.01 <= args.gap <= 5:
        parser.error("--requests must be 1-5000 and --gap 0.01-5")
    install_interrupts()
    status = 1
    with workdir("bridge-bench-delivery-") as root:
        cluster = Cluster(root)
        try:
            log("starting Postgres")
            cluster.start()
            report = asyncio.run(run(args, cluster, root))
            if args.json:
                json.dump(report, sys.stdout, indent=2, default=str)
                print()
            else:
                print_report(report, sys.stdout)
            status = 0 if report["missing"] == 0 and report["requests"] else 1
        except KeyboardInterrupt:
            log("interrupted")
            status = 130
        except (BenchError, subprocess.SubprocessError) as exc:
            log(f"error: {exc}")
        finally:
            ignore_interrupts()
            cluster.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
