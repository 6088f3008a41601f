"""REST benchmark: the REST API under concurrent load, against floors on the same database.

One private Postgres with the bridge's schema and a deterministic seed: 200 network users,
500 direct conversations (each user in about five), 20 messages in each. Three servers, one
process each, on the same database:

- the bridge's real app (``bench.apps bridge``: default config, HS256 JWTs), or with
  ``--processes N`` N intake processes on one port (``appservice.reuse_port``) beside a
  worker process, as ``bridge run --processes N`` deploys it;
- the bare floor (``bench.rest_floor --post bare``): aiohttp + asyncpg + PyJWT, the bridge's
  pool settings, one statement per request;
- the full floor (``bench.rest_floor --post full``): the same, but a post makes the writes the
  bridge makes (message, conversation counters, notification row, outbox row) in one statement.

The bridge's homeserver is a sink (``bench.apps homeserver-sink``) that answers every call at
once: the outbox really sends each post's message (the floor only writes the outbox row), and
its CPU is not counted as the bridge's.

The load: 64 concurrent clients, each its own user and token (a JWT signed with the bridge's
secret), in a separate client process (``bench.rest_load``; its CPU is reported, to show it
is not the bottleneck). Scenarios: the first page of conversations, the first page of
messages, posting a message, and a 40/40/20 mix. Rounds alternate between the bridge and its
floor (reads: the bare floor; posts and the mix: the full floor), and each reports req/s,
p50/p99 latency, errors, and CPU per request of the server, of PostgreSQL and of the client.

Run from the repository root: ``python -m bench.rest [--quick] [--json] [--processes N]``.
"""

# The seed builds its statements from integers of this file only (no outside input).
# ruff: noqa: S608

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench.common import (
    HOST,
    REPO_ROOT,
    BenchError,
    Child,
    Cluster,
    bridge_config_dict,
    cpu_seconds,
    find_py_spy,
    free_port,
    header_line,
    ignore_interrupts,
    install_interrupts,
    log,
    machine_facts,
    markdown_table,
    postgres_cpu_seconds,
    server_version,
    start_py_spy,
    stats,
    stop_process,
    workdir,
)
from bridge.cli_token import mint_token
from bridge.config import parse_config
from bridge.db.schema import ensure_schema

JWT_SECRET = "bench-jwt-secret-of-at-least-32-bytes!"
USERS = 200
CONVERSATIONS = 500
MESSAGES_PER_CONVERSATION = 20
CLIENTS = 64
SCENARIOS = ("conversations", "messages", "post", "mix")
#: Which floor each scenario is compared with.
FLOOR_OF = {
    "conversations": "floor",
    "messages": "floor",
    "post": "full floor",
    "mix": "full floor",
}
GOALS = {"conversations": 0.8, "messages": 0.8, "post": 0.7, "mix": 0.7}
FULL = {"rounds": 3, "seconds": 8.0, "warmup": 2.0}
QUICK = {"rounds": 1, "seconds": 3.0, "warmup": 1.0}


def _uid(n: int) -> uuid.UUID:
    import hashlib

    return uuid.UUID(hashlib.md5(f"u{n}".encode()).hexdigest())  # noqa: S324


def _pairs() -> list[tuple[int, int]]:
    """The direct conversations: user i with i+1, i+2, i+3 (mod 200), the first 500."""
    return [(i, (i + k) % USERS) for k in (1, 2, 3) for i in range(USERS)][:CONVERSATIONS]


SEED = [
    f"""
    INSERT INTO network_user (id, display_name, created_at, updated_at)
    SELECT md5('u' || i)::uuid, 'Person ' || i, now() - interval '30 days',
           now() - interval '30 days'
    FROM generate_series(0, {USERS - 1}) i
    """,
    """
    INSERT INTO conversation (id, is_group, created_by, direct_key, created_at)
    SELECT md5('c' || n)::uuid, false, md5('u' || a)::uuid,
           least(md5('u' || a)::uuid, md5('u' || b)::uuid)::text || ':'
           || greatest(md5('u' || a)::uuid, md5('u' || b)::uuid)::text,
           now() - interval '10 days'
    FROM unnest($1::int[], $2::int[]) WITH ORDINALITY AS p(a, b, n)
    """,
    """
    INSERT INTO conversation_participant (conversation_id, user_id, joined_at)
    SELECT md5('c' || n)::uuid, md5('u' || x)::uuid, now() - interval '10 days'
    FROM unnest($1::int[], $2::int[]) WITH ORDINALITY AS p(a, b, n), LATERAL (VALUES (a), (b)) v(x)
    """,
    f"""
    INSERT INTO message (id, conversation_id, sender_id, content, sent_at, origin)
    SELECT md5('m' || n || ':' || k)::uuid, md5('c' || n)::uuid,
           md5('u' || CASE WHEN k % 2 = 0 THEN a ELSE b END)::uuid,
           'Seed message ' || k || ' of conversation ' || n,
           now() - interval '9 days' + k * interval '1 hour' + n * interval '1 second',
           'network'
    FROM unnest($1::int[], $2::int[]) WITH ORDINALITY AS p(a, b, n),
         generate_series(1, {MESSAGES_PER_CONVERSATION}) k
    """,
    """
    UPDATE conversation c SET last_message_at = x.at, message_count = x.n
    FROM (SELECT conversation_id, max(sent_at) AS at, count(*)::int AS n FROM message
          GROUP BY 1) x
    WHERE c.id = x.conversation_id
    """,
]


async def seed(dsn: str) -> None:
    a = [p[0] for p in _pairs()]
    b = [p[1] for p in _pairs()]
    conn = await asyncpg.connect(dsn)
    try:
        for sql in SEED:
            await conn.execute(sql, *((a, b) if "$1" in sql else ()))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def clients_plan(config: Any) -> list[dict[str, Any]]:
    """64 clients: users 0..63, each with its token and its conversations' ids."""
    pairs = _pairs()
    conv_ids = [str(uuid.UUID(_md5(f"c{n + 1}"))) for n in range(len(pairs))]
    out = []
    for user in range(CLIENTS):
        mine = [conv_ids[n] for n, (a, b) in enumerate(pairs) if user in (a, b)]
        token = mint_token(config, _uid(user), ttl=6 * 3600)
        out.append({"token": token, "conversations": mine})
    return out


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


# ---------------------------------------------------------------------------- servers


def server_port() -> int:
    """A free port below the ephemeral range. The load client opens and closes many
    connections from ephemeral ports; a server on one of them can meet a TIME_WAIT left by
    such a connection and refuse a new client's SYN."""
    low, _high = (
        int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )
    for _ in range(200):
        port = random.randrange(max(low // 2, 1024), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        return port
    return free_port()


class Target:
    """A server under test: its processes (to read their CPU) and its port."""

    def __init__(self, name: str, port: int, children: list[Child]) -> None:
        self.name, self.port, self.children = name, port, children

    def start(self) -> None:
        for child in self.children:
            child.start()

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def cpu(self) -> float:
        return sum(cpu_seconds(c.pid) for c in self.children if c.running())


def bridge_target(root: Path, dsn: str, processes: int, homeserver: str) -> Target:
    port = server_port()
    jwt = {"api": {"jwt": {"secret": JWT_SECRET}}, "homeserver": {"address": homeserver}}
    if processes <= 1:
        args = ["bridge", "--port", str(port), "--dsn", dsn, "--config", json.dumps(jwt)]
        return Target("bridge", port, [Child.module("bridge", "bench.apps", args, root)])
    children = []
    for n in range(processes):
        extra = {**jwt, "appservice": {"role": "intake", "reuse_port": True}}
        args = ["bridge", "--port", str(port), "--dsn", dsn, "--config", json.dumps(extra)]
        children.append(Child.module(f"bridge-intake-{n}", "bench.apps", args, root))
    worker_port = server_port()
    extra = {**jwt, "appservice": {"role": "worker"}}
    args = ["bridge", "--port", str(worker_port), "--dsn", dsn, "--config", json.dumps(extra)]
    children.append(Child.module("bridge-worker", "bench.apps", args, root))
    return Target(f"bridge x{processes}", port, children)


def floor_target(root: Path, dsn: str, mode: str) -> Target:
    port = server_port()
    args = ["--port", str(port), "--dsn", dsn, "--secret", JWT_SECRET, "--post", mode]
    name = "floor" if mode == "bare" else "full floor"
    child = Child.module(f"floor-{mode}", "bench.rest_floor", args, root)
    return Target(name, port, [child])


# ---------------------------------------------------------------------------- rounds


def one_round(
    target: Target,
    scenario: str,
    plan_clients: list[dict[str, Any]],
    sizes: dict[str, float],
    root: Path,
    postmaster: int | None,
    profile: Path | None = None,
) -> dict[str, Any]:
    plan = {
        "port": target.port,
        "scenario": scenario,
        "seconds": sizes["seconds"],
        "warmup": sizes["warmup"],
        "clients": plan_clients,
    }
    plan_path = root / "plan.json"
    plan_path.write_text(json.dumps(plan))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.rest_load", str(plan_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "MEASURE":
            raise BenchError("the load client did not start measuring")
        server0, pg0 = target.cpu(), postgres_cpu_seconds(postmaster)
        spies = []
        if profile is not None and target.name.startswith("bridge"):
            py_spy = find_py_spy()
            profile.mkdir(parents=True, exist_ok=True)
            for child in target.children:
                out = profile / f"{scenario}-{child.name}.txt"
                spies.append(start_py_spy(py_spy, child.pid, out))
        if proc.stdout.readline().strip() != "END":
            raise BenchError("the load client did not end measuring")
        server1, pg1 = target.cpu(), postgres_cpu_seconds(postmaster)
        for spy in spies:
            stop_process(spy, "py-spy", signal.SIGINT)
        result = json.loads(proc.stdout.readline())
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    n = max(result["requests"], 1)
    lat = stats(result.pop("latencies_ms"))
    return {
        "target": target.name,
        "scenario": scenario,
        "requests": result["requests"],
        "errors": result["errors"],
        "error_sample": result["error_sample"],
        "rps": result["requests"] / result["seconds"],
        "p50": lat["p50"],
        "p99": lat["p99"],
        "server_cpu_ms": 1000 * (server1 - server0) / n,
        "pg_cpu_ms": 1000 * (pg1 - pg0) / n,
        "client_cpu_ms": 1000 * result["cpu_seconds"] / n,
        "server_cores": (server1 - server0) / result["seconds"],
        "pg_cores": (pg1 - pg0) / result["seconds"],
        "client_cores": result["cpu_seconds"] / result["seconds"],
    }


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per target: requests/s over all rounds, median of the rounds' p50/p99 and CPU figures."""

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    out: dict[str, Any] = {"requests": sum(r["requests"] for r in rounds)}
    out["errors"] = sum(r["errors"] for r in rounds)
    out["rps"] = sum(r["rps"] for r in rounds) / len(rounds)
    for key in ("p50", "p99", "server_cpu_ms", "pg_cpu_ms", "client_cpu_ms"):
        out[key] = median([r[key] for r in rounds])
    for key in ("server_cores", "pg_cores", "client_cores"):
        out[key] = median([r[key] for r in rounds])
    return out


async def _scenarios(
    args: argparse.Namespace,
    cluster: Cluster,
    root: Path,
    sizes: dict[str, float],
    plan_clients: list[dict[str, Any]],
    scenarios: list[str],
    results: dict[str, dict[str, Any]],
    sink_port: int,
) -> None:
    """Each scenario's alternating rounds of the bridge and its floor, into ``results``."""
    for scenario in scenarios:
        # Each scenario on a fresh copy of the seed (posts grow the tables).
        dsn = await cluster.create_database("rest", template="rest_template")
        targets = [
            bridge_target(root, dsn, args.processes, f"http://{HOST}:{sink_port}"),
            floor_target(root, dsn, "bare" if FLOOR_OF[scenario] == "floor" else "full"),
        ]
        rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        try:
            for target in targets:
                target.start()
            for n in range(int(sizes["rounds"])):
                order = targets if n % 2 == 0 else list(reversed(targets))
                for target in order:
                    r = one_round(
                        target,
                        scenario,
                        plan_clients,
                        sizes,
                        root,
                        cluster.postmaster,
                        args.profile if n == 0 else None,
                    )
                    rounds[target.name].append(r)
                    log(
                        f"{scenario} round {n + 1} {target.name}: {r['rps']:.0f} req/s, "
                        f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, {r['errors']} errors, "
                        f"server {r['server_cores']:.2f} cores, pg {r['pg_cores']:.2f}, "
                        f"client {r['client_cores']:.2f}"
                    )
                    if r["errors"]:
                        log(f"  error sample: {r['error_sample']}")
                        for child in target.children:
                            log(
                                f"  {child.name} running: {child.running()}; log:\n{child.tail(15)}"
                            )
        finally:
            for target in targets:
                target.stop()
        bridge, floor = targets[0].name, targets[1].name
        results[scenario] = {
            "bridge": summarise(rounds[bridge]),
            "floor": summarise(rounds[floor]),
            "floor_name": floor,
            "rounds": rounds,
        }
        results[scenario]["ratio"] = results[scenario]["bridge"]["rps"] / max(
            results[scenario]["floor"]["rps"], 1e-9
        )
        await cluster.drop_database("rest")


async def run(args: argparse.Namespace, cluster: Cluster, root: Path) -> dict[str, Any]:
    started = time.monotonic()
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = {**sizes, "rounds": args.rounds}
    facts = machine_facts()
    pg = await server_version(cluster.admin_dsn)
    template = await cluster.create_database("rest_template")
    await ensure_schema(template, migrate=True)
    await seed(template)
    config = parse_config(
        bridge_config_dict("bench-hs-token", 1, {"api": {"jwt": {"secret": JWT_SECRET}}})
    )
    plan_clients = clients_plan(config)
    scenarios = args.scenario or list(SCENARIOS)
    results: dict[str, dict[str, Any]] = {}
    # The bridge's outbox sends each post's message to this homeserver (answered at once).
    sink_port = server_port()
    sink = Child.module(
        "homeserver-sink", "bench.apps", ["homeserver-sink", "--port", str(sink_port)], root
    )
    sink.start()
    try:
        await _scenarios(args, cluster, root, sizes, plan_clients, scenarios, results, sink_port)
    finally:
        sink.stop()
    return {
        "benchmark": "rest",
        "machine": facts,
        "postgres": pg,
        "processes": args.processes,
        "clients": CLIENTS,
        "users": USERS,
        "conversations": CONVERSATIONS,
        "sizes": sizes,
        "results": results,
        "seconds": round(time.monotonic() - started, 1),
    }


LABELS = {
    "conversations": "GET conversations (first page)",
    "messages": "GET messages (first page)",
    "post": "POST a message (vs the full floor)",
    "mix": "mix 40/40/20 (vs the full floor)",
}


def print_report(report: dict[str, Any], out: TextIO) -> None:
    print(header_line("REST benchmark", report["machine"], report["postgres"]), file=out)
    sizes = report["sizes"]
    bridge_name = (
        "bridge" if report["processes"] <= 1 else f"bridge, {report['processes']} intake processes"
    )
    print(
        f"{report['clients']} concurrent clients (own user and token each), {report['users']} "
        f"users, {report['conversations']} direct conversations; {bridge_name}; "
        f"{sizes['rounds']} alternating round(s) of {sizes['seconds']:.0f} s per target "
        f"(after {sizes['warmup']:.0f} s warm-up).\n",
        file=out,
    )
    rows = []
    cpu_rows = []
    for scenario, r in report["results"].items():
        b, f = r["bridge"], r["floor"]
        goal = GOALS[scenario]
        ok = r["ratio"] >= goal and (scenario in ("post", "mix") or b["p99"] <= 2 * f["p99"])
        rows.append(
            [
                LABELS[scenario],
                round(b["rps"]),
                round(f["rps"]),
                r["ratio"],
                f"{b['p50']:.0f} / {b['p99']:.0f}",
                f"{f['p50']:.0f} / {f['p99']:.0f}",
                b["errors"] + f["errors"],
                f"{'ok' if ok else 'MISSED'} (≥ {goal})",
            ]
        )
        cpu_rows.append(
            [
                LABELS[scenario],
                b["server_cpu_ms"],
                f["server_cpu_ms"],
                b["pg_cpu_ms"],
                f["pg_cpu_ms"],
                f"{b['server_cores']:.2f} / {f['server_cores']:.2f}",
                f"{b['pg_cores']:.2f} / {f['pg_cores']:.2f}",
                f"{b['client_cores']:.2f} / {f['client_cores']:.2f}",
            ]
        )
    markdown_table(
        [
            "scenario",
            "bridge req/s",
            "floor req/s",
            "ratio",
            "bridge p50 / p99 ms",
            "floor p50 / p99 ms",
            "errors",
            "goal",
        ],
        rows,
        out,
    )
    print("\nCPU per request (ms) and cores busy, bridge / floor:\n", file=out)
    markdown_table(
        [
            "scenario",
            "bridge CPU ms/req",
            "floor CPU ms/req",
            "PG ms/req (bridge)",
            "PG ms/req (floor)",
            "server cores",
            "PG cores",
            "load client cores",
        ],
        cpu_rows,
        out,
    )
    print(f"\nTook {report['seconds']:.0f} s.", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 3 s round per target")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--rounds", type=int, help="alternating rounds per target")
    parser.add_argument(
        "--processes", type=int, default=1, help="bridge intake processes on one port"
    )
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="(repeatable)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles of the bridge's processes in the first round, in DIR",
    )
    args = parser.parse_args(argv)
    install_interrupts()
    with workdir("bench-rest-") as root:
        cluster = Cluster(root)
        try:
            cluster.start()
            report = asyncio.run(run(args, cluster, root))
        finally:
            ignore_interrupts()
            cluster.stop()
    if args.json:
        print(json.dumps(report, default=str, indent=2))
    else:
        print_report(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
