"""Processing benchmark: inbox to domain rows, sustained under intake and as a drain.

Every database is set up alike (schema at head, then rows written directly): 1,000 portal
rooms, each a conversation with its ``portal`` row; half are 1:1 (a Matrix user and a network
user), half groups (two Matrix users, three network users); the 500 Matrix users
``@user<n>:localhost`` are linked network users. Events are ``m.room.message`` as in
``bench/payload.py`` (text of 50-200 characters, a third with HTML), each sent in a portal by
one of its Matrix participants, a fifth mentioning another participant (Matrix user or
ghost), so the bridge's real handlers create a ``message`` row and a notification for every
other participant.

- **Sustained**: intake at the Synapse-like rate (one transaction of 100 events in flight, as
  mode A of ``bench/intake.py``) for a fixed time, while the inbox is processed. Compared:
  ``bridge``, the real app (``bench.servers bridge``: default config, 4 inbox workers) and
  ``floor``, the same app with its workers left out (intake only) next to a floor processor
  (``bench.apps floor-processor``: one ``INSERT INTO message ... SELECT`` per batch of up to
  1,000 pending inbox rows, which it marks processed; two connections). Each segment runs on
  a fresh database with fresh processes, after 10 warm-up transactions have been processed.
  Sampled every 0.5 s: the pending inbox rows (the backlog); messages processed = events
  acknowledged - growth of the backlog.
- **Drain**: N events (100,000) preloaded as pending inbox rows (committed in one DB
  transaction; the bridge is woken by one more transaction of 100 through its endpoint, the
  floors poll), then the time until none is pending. Compared: ``bridge``, ``floor`` and
  ``floor-full`` (the bridge's domain effects done set-based: message rows, notifications for
  the other participants, ``last_message_at``). Also ``split-1`` and ``split-2``: the bridge
  deployed as an intake process (``appservice.role: intake``, which takes the wake-up
  transaction) beside one or two worker processes (``role: worker``, 4 inbox workers each):
  how processing scales with worker processes on this machine.

Servers take turns within each round, in rotated order, each on its own database of one
private Postgres. Prints the tables and the ratios against the goals, then checks that every
event became exactly one message.

Run from the repository root: ``python -m bench.processing [--quick] [--json]
[--profile DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg

from bench.common import (
    HOST,
    BenchError,
    Child,
    Cluster,
    cpu_seconds,
    find_py_spy,
    free_port,
    header_line,
    ignore_interrupts,
    install_interrupts,
    log,
    log_offset,
    machine_facts,
    markdown_table,
    postgres_cpu_seconds,
    server_version,
    slope,
    start_py_spy,
    statement_profile,
    stats,
    stop_process,
    workdir,
)
from bench.payload import Transaction, TransactionFactory
from bridge.db.schema import ensure_schema
from bridge.messaging.service import direct_key

HS_TOKEN = "bench-hs-token"
TXN_PATH = "/_matrix/app/v1/transactions/{}"
DOMAIN = "localhost"
NAMESPACE = uuid.UUID("6f1c3b52-3c55-4a7e-9a43-6d1e0f0b2a10")
BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in ms
GOAL_MESSAGES_PER_S = 10_000.0


@dataclass(frozen=True)
class Sizes:
    rounds: int
    segment_s: float
    drain_events: int
    drain_rounds: int
    drain_timeout: float
    settle_timeout: float
    max_seconds: float
    max_backlog: int | None = None  # the bridge's appservice.inbox.max_backlog (None: default)


FULL = Sizes(
    rounds=3,
    segment_s=15.0,
    drain_events=100_000,
    drain_rounds=2,
    drain_timeout=240.0,
    settle_timeout=120.0,
    max_seconds=1200.0,
)
QUICK = Sizes(
    rounds=1,
    segment_s=6.0,
    drain_events=10_000,
    drain_rounds=1,
    drain_timeout=60.0,
    settle_timeout=30.0,
    max_seconds=240.0,
)


# ---------------------------------------------------------------------------- the portals


def _uid(kind: str, n: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}-{n}")


def ghost_mxid(user: uuid.UUID) -> str:
    return f"@_pn_{user}:{DOMAIN}"


@dataclass(frozen=True)
class Portal:
    room_id: str
    conversation_id: uuid.UUID
    is_group: bool
    matrix_users: tuple[int, ...]  # indexes of @user<n>
    network_users: tuple[int, ...]

    @property
    def senders(self) -> list[str]:
        return [f"@user{n}:{DOMAIN}" for n in self.matrix_users]

    @property
    def everyone(self) -> list[str]:
        return self.senders + [ghost_mxid(_uid("net", n)) for n in self.network_users]


def make_portals(rooms: int, matrix_users: int, network_users: int) -> list[Portal]:
    portals = []
    for n in range(rooms):
        room_id = TransactionFactory._room_id(n)
        if n % 2 == 0:  # 1:1: a Matrix user and a network user
            portals.append(
                Portal(room_id, _uid("conv", n), False, (n % matrix_users,), (n % network_users,))
            )
        else:  # group: two Matrix users, three network users
            mx: tuple[int, ...] = (n % matrix_users, (n * 7 + 3) % matrix_users)
            if mx[0] == mx[1]:
                mx = (mx[0],)
            net = tuple(dict.fromkeys((n + k) % network_users for k in range(3)))
            portals.append(Portal(room_id, _uid("conv", n), True, mx, net))
    return portals


async def insert_portals(
    dsn: str, portals: list[Portal], matrix_users: int, network_users: int
) -> None:
    """Users, conversations, participants and portal rows, written directly."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                """
                INSERT INTO network_user (id, display_name, matrix_user_id)
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
                """,
                [_uid("mx", n) for n in range(matrix_users)]
                + [_uid("net", n) for n in range(network_users)],
                [f"user{n}" for n in range(matrix_users)]
                + [f"Network person {n}" for n in range(network_users)],
                [f"@user{n}:{DOMAIN}" for n in range(matrix_users)] + [None] * network_users,
            )
            conv_rows = []
            part_rows = []
            portal_rows = []
            for p in portals:
                members = [_uid("mx", n) for n in p.matrix_users] + [
                    _uid("net", n) for n in p.network_users
                ]
                key = None if p.is_group else direct_key(members[0], members[1])
                title = f"Project {p.conversation_id.hex[:6]}" if p.is_group else None
                conv_rows.append((p.conversation_id, p.is_group, title, members[0], key))
                part_rows += [(p.conversation_id, m) for m in members]
                portal_rows.append(
                    (p.room_id, p.conversation_id, f"#_pn_conv_{p.conversation_id}:{DOMAIN}")
                )
            await conn.executemany(
                "INSERT INTO conversation (id, is_group, title, created_by, direct_key) "
                "VALUES ($1, $2, $3, $4, $5)",
                conv_rows,
            )
            await conn.executemany(
                "INSERT INTO conversation_participant (conversation_id, user_id) VALUES ($1, $2)",
                part_rows,
            )
            await conn.executemany(
                "INSERT INTO portal (room_id, conversation_id, alias) VALUES ($1, $2, $3)",
                portal_rows,
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


class PortalFactory(TransactionFactory):
    """Synapse-shaped transactions whose events are in portals, sent by a participant."""

    def __init__(self, portals: list[Portal], *, seed: int) -> None:
        super().__init__(rooms=1, users=1, seed=seed)
        self._portals = portals
        self._senders = [p.senders for p in portals]
        self._everyone = [p.everyone for p in portals]

    def event(self) -> dict[str, Any]:
        self.events_made += 1
        n = self._rng.randrange(len(self._portals))
        sender = self._rng.choice(self._senders[n])
        content = self._content()
        content.pop("m.mentions", None)
        if self._rng.random() < 0.2:
            others = [u for u in self._everyone[n] if u != sender]
            content["m.mentions"] = {"user_ids": [self._rng.choice(others)]}
        return {
            "type": "m.room.message",
            "room_id": self._portals[n].room_id,
            "sender": sender,
            "content": content,
            "origin_server_ts": BASE_TS + self.events_made * 37,
            "unsigned": {"age": self._rng.randint(5, 400)},
            "event_id": self._event_id(),
        }


# ---------------------------------------------------------------------------- processes


@dataclass
class Setup:
    """One side of a comparison: its database and processes."""

    name: str
    database: str
    dsn: str = ""
    intake: Child | None = None  # serves the transaction endpoint
    processor: Child | None = None  # floor processor, if any
    port: int = 0
    next_txn: int = 1
    events_sent: int = 0

    def children(self) -> list[Child]:
        return [c for c in (self.intake, self.processor) if c is not None]

    def cpu(self) -> float:
        return sum(cpu_seconds(c.pid) for c in self.children() if c.running())


#: Drains of the split deployment: worker processes beside one intake process.
SPLIT_WORKERS = {"split-1": 1, "split-2": 2}


def bridge_child(
    name: str,
    dsn: str,
    port: int,
    root: Path,
    workers: int | None,
    max_backlog: int | None = None,
    role: str | None = None,
) -> Child:
    args = ["bridge", "--port", str(port), "--dsn", dsn]
    if role is not None:
        args += ["--role", role]
    if workers is not None:
        args += ["--workers", str(workers)]
    if max_backlog is not None:
        args += ["--max-backlog", str(max_backlog)]
    return Child.module(name, "bench.servers", args, root, env={"BENCH_HS_TOKEN": HS_TOKEN})


def floor_child(name: str, dsn: str, mode: str, root: Path) -> Child:
    return Child.module(name, "bench.apps", ["floor-processor", "--dsn", dsn, "--mode", mode], root)


async def put_txn(session: aiohttp.ClientSession, setup: Setup, txn: Transaction) -> float:
    url = f"http://{HOST}:{setup.port}" + TXN_PATH.format(f"p{setup.next_txn}")
    setup.next_txn += 1
    headers = {"Authorization": f"Bearer {HS_TOKEN}", "Content-Type": "application/json"}
    started = time.perf_counter()
    async with session.put(url, data=txn.body, headers=headers) as resp:
        await resp.read()
        if resp.status != 200:
            raise BenchError(f"{setup.name} answered {resp.status} to {url}")
    setup.events_sent += txn.event_count
    return (time.perf_counter() - started) * 1000


async def pending(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'"))


async def settle(conn: asyncpg.Connection, cluster: Cluster, limit: float) -> float:
    started = time.monotonic()
    while await pending(conn) > 0:
        if time.monotonic() - started > limit:
            log(f"  backlog not drained after {limit:.0f} s; going on")
            break
        await asyncio.sleep(0.1)
    waited = time.monotonic() - started
    await cluster.checkpoint()
    await asyncio.sleep(0.2)
    return waited


# ---------------------------------------------------------------------------- sustained


async def sustained_segment(
    session: aiohttp.ClientSession,
    setup: Setup,
    conn: asyncpg.Connection,
    txns: list[Transaction],
    seconds: float,
    cluster: Cluster,
) -> dict[str, Any]:
    """Mode A intake for ``seconds`` while sampling the backlog every 0.5 s."""
    latencies: list[float] = []
    acked = 0
    done = asyncio.Event()
    samples: list[tuple[float, int, int]] = []  # (t, acked events, pending)
    pending0 = await pending(conn)
    cpu0, pg0 = setup.cpu(), postgres_cpu_seconds(cluster.postmaster)
    started = time.monotonic()

    async def load() -> None:
        nonlocal acked
        for txn in txns:
            if time.monotonic() - started >= seconds:
                break
            latencies.append(await put_txn(session, setup, txn))
            acked += txn.event_count
        done.set()

    async def sample() -> None:
        while not done.is_set():
            t = time.monotonic() - started
            samples.append((t, acked, await pending(conn)))
            try:
                await asyncio.wait_for(done.wait(), 0.5)
            except TimeoutError:
                pass

    await asyncio.gather(load(), sample())
    elapsed = time.monotonic() - started
    pending_end = await pending(conn)
    samples.append((elapsed, acked, pending_end))
    cpu = setup.cpu() - cpu0
    pg = postgres_cpu_seconds(cluster.postmaster) - pg0
    if elapsed < seconds * 0.95:
        log(f"  {setup.name}: the prepared transactions ran out after {elapsed:.1f} s")
    processed = acked - (pending_end - pending0)
    steady = [(t, float(p)) for t, _, p in samples if t >= elapsed / 4]
    return {
        "seconds": elapsed,
        "events_acked": acked,
        "intake_events_per_s": acked / elapsed,
        "processed": processed,
        "messages_per_s": processed / elapsed,
        "ack_p50_ms": stats(latencies)["p50"],
        "ack_p99_ms": stats(latencies)["p99"],
        "backlog_max": max(p for _, _, p in samples),
        "backlog_median": statistics.median(p for _, _, p in samples),
        "backlog_end": pending_end,
        "backlog_slope_per_s": slope(steady),
        "cpu_ms_per_message": 1000 * cpu / max(processed, 1),
        "pg_cpu_ms_per_message": 1000 * pg / max(processed, 1),
        "samples": [(round(t, 2), a, p) for t, a, p in samples],
    }


async def sustained_run(
    name: str,
    cluster: Cluster,
    root: Path,
    sizes: Sizes,
    warm: list[Transaction],
    txns: list[Transaction],
    round_no: int,
    profile: Path | None,
) -> dict[str, Any]:
    """One segment on a fresh database with fresh processes (no backlog left by another)."""
    setup = Setup(name, f"sustained_{name}_{round_no}")
    setup.dsn = await cluster.create_database(setup.database, template="proc_template")
    setup.port = free_port()
    if name == "bridge":
        setup.intake = bridge_child(
            f"bridge-s{round_no}", setup.dsn, setup.port, root, None, sizes.max_backlog
        )
    else:
        setup.intake = bridge_child(f"floor-intake-s{round_no}", setup.dsn, setup.port, root, 0)
        setup.processor = floor_child(f"floor-processor-s{round_no}", setup.dsn, "minimal", root)
    spy = None
    conn = await asyncpg.connect(setup.dsn)
    try:
        for child in setup.children():
            child.start()
        connector = aiohttp.TCPConnector(limit=1)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for txn in warm:
                await put_txn(session, setup, txn)
            await settle(conn, cluster, sizes.settle_timeout)
            if profile is not None and name == "bridge":
                assert setup.intake is not None
                spy = start_py_spy(
                    find_py_spy(), setup.intake.pid, profile / f"sustained-bridge-{round_no}.txt"
                )
                await asyncio.sleep(1.0)
            result = await sustained_segment(session, setup, conn, txns, sizes.segment_s, cluster)
        if spy is not None:
            stop_process(spy, "py-spy", 2)
            spy = None
        for child in setup.children():
            child.stop()
        result["check"] = dict(
            await conn.fetchrow(
                """
                SELECT (SELECT count(*) FROM message) AS messages,
                       (SELECT count(*) FROM inbox) AS inbox,
                       (SELECT count(*) FROM inbox WHERE state = 'processed') AS processed,
                       (SELECT count(*) FROM inbox WHERE state IN ('ignored', 'dead'))
                           AS other,
                       (SELECT count(*) FROM dead_letter) AS dead_letters
                """
            )
        )
        result["events_sent"] = setup.events_sent
        return result
    finally:
        if spy is not None:
            stop_process(spy, "py-spy", 2)
        for child in setup.children():
            child.stop()
        await conn.close()
        await cluster.drop_database(setup.database)


# ---------------------------------------------------------------------------- drain


_PRELOAD_TABLE = """
CREATE TABLE bench_preload (
    ord      integer PRIMARY KEY,
    event_id text NOT NULL,
    lane     text NOT NULL,
    sender   text NOT NULL,
    event    jsonb NOT NULL
)
"""

_MOVE = """
WITH moved AS (
    INSERT INTO inbox (event_id, lane, kind, event_type, sender, txn_id, event)
    SELECT event_id, lane, 'pdu', 'm.room.message', sender, 'preload', event
    FROM bench_preload WHERE ord < $1 ORDER BY ord
    RETURNING lane
)
INSERT INTO inbox_lane AS l (lane)
SELECT DISTINCT lane FROM moved ORDER BY lane
ON CONFLICT (lane) DO UPDATE SET seq = l.seq + 1
"""


async def build_drain_template(dsn: str, portals: list[Portal], count: int) -> list[dict[str, Any]]:
    """Put ``count`` events into ``bench_preload``; return the last 100 (the wake-up txn)."""
    factory = PortalFactory(portals, seed=7)
    events = [factory.event() for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_PRELOAD_TABLE)
        await conn.copy_records_to_table(
            "bench_preload",
            records=[
                (i, e["event_id"], e["room_id"], e["sender"], json.dumps(e))
                for i, e in enumerate(events)
            ],
            columns=["ord", "event_id", "lane", "sender", "event"],
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return events[-100:]


async def drain_run(
    name: str,
    cluster: Cluster,
    root: Path,
    sizes: Sizes,
    wake_events: list[dict[str, Any]],
    round_no: int,
    profile: Path | None,
    *,
    log_statements: bool = False,
) -> dict[str, Any]:
    database = f"drain_{name.replace('-', '_')}_{round_no}"
    dsn = await cluster.create_database(database, template="proc_drain_template")
    n = sizes.drain_events
    offset = 0
    if log_statements:
        await cluster.log_statements(database)
        offset = log_offset(cluster.log_path)
    children: list[Child]
    port = 0
    if name == "bridge":
        port = free_port()
        children = [
            bridge_child(f"{name}-drain{round_no}", dsn, port, root, None, sizes.max_backlog)
        ]
    elif name in SPLIT_WORKERS:
        port = free_port()
        children = [
            bridge_child(
                f"{name}-intake{round_no}", dsn, port, root, None, sizes.max_backlog, "intake"
            )
        ] + [
            bridge_child(
                f"{name}-worker{k}-{round_no}", dsn, free_port(), root, None, None, "worker"
            )
            for k in range(SPLIT_WORKERS[name])
        ]
    else:
        mode = "full" if name == "floor-full" else "minimal"
        children = [floor_child(f"{name}-drain{round_no}", dsn, mode, root)]
    child = children[0]
    takes_wake = name == "bridge" or name in SPLIT_WORKERS

    def cpu() -> float:
        return sum(cpu_seconds(c.pid) for c in children)

    spy = None
    conn = await asyncpg.connect(dsn)
    admin = await asyncpg.connect(cluster.admin_dsn)
    try:
        for process in children:
            process.start()
        await asyncio.sleep(0.5)
        await cluster.checkpoint()
        xacts0 = await _xacts(admin, database)
        moved = n - len(wake_events) if takes_wake else n
        if profile is not None and name == "bridge":
            spy = start_py_spy(find_py_spy(), child.pid, profile / f"drain-bridge-{round_no}.txt")
            await asyncio.sleep(1.0)
        cpu0, pg0 = cpu(), postgres_cpu_seconds(cluster.postmaster)
        async with conn.transaction():
            await conn.execute(_MOVE, moved)
        started = time.monotonic()
        if takes_wake:
            body = json.dumps({"events": wake_events}, separators=(",", ":")).encode()
            async with (
                aiohttp.ClientSession() as session,
                session.put(
                    f"http://{HOST}:{port}" + TXN_PATH.format("wake"),
                    data=body,
                    headers={"Authorization": f"Bearer {HS_TOKEN}"},
                ) as resp,
            ):
                if resp.status != 200:
                    raise BenchError(f"bridge answered {resp.status} to the wake-up transaction")
        progress: list[tuple[float, int]] = []
        next_sample = 0.0
        finished = None
        polls = 0  # our own statements in that database, left out of its counters
        while time.monotonic() - started < sizes.drain_timeout:
            t = time.monotonic() - started
            if t >= next_sample:
                progress.append((round(t, 1), await pending(conn)))
                next_sample += 2.0
                polls += 1
            polls += 1
            if not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM inbox WHERE state = 'pending')"
            ):
                finished = time.monotonic() - started
                break
            await asyncio.sleep(0.05)
        cpu_used = cpu() - cpu0
        pg = postgres_cpu_seconds(cluster.postmaster) - pg0
        if spy is not None:
            stop_process(spy, "py-spy", 2)
            spy = None
        if finished is None:
            left = await pending(conn)
            log(f"  {name}: {left} events still pending after {sizes.drain_timeout:.0f} s")
            done_events = n - left
            seconds = sizes.drain_timeout
        else:
            done_events = n
            seconds = finished
        for process in children:
            process.stop()
        await asyncio.sleep(0.5)
        xacts = await _xacts(admin, database) - xacts0 - polls - 1
        check = await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM message) AS messages,
                   (SELECT count(*) FROM inbox WHERE state = 'processed') AS processed,
                   (SELECT count(*) FROM inbox WHERE state IN ('ignored', 'dead')) AS other,
                   (SELECT count(*) FROM dead_letter) AS dead_letters,
                   (SELECT count(*) FROM notification) AS notifications,
                   (SELECT count(*) FROM outbox) AS outbox
            """
        )
        statements = []
        if log_statements:
            statements = statement_profile(cluster.log_path, offset, skip=_OWN_STATEMENTS)
            for row in statements:
                row["calls_per_message"] = row["calls"] / max(done_events, 1)
                row["us_per_message"] = 1000 * row["total_ms"] / max(done_events, 1)
        return {
            "statements": statements,
            "events": n,
            "done": done_events,
            "finished": finished is not None,
            "seconds": seconds,
            "messages_per_s": done_events / seconds,
            "cpu_ms_per_message": 1000 * cpu_used / max(done_events, 1),
            "pg_cpu_ms_per_message": 1000 * pg / max(done_events, 1),
            "db_transactions_per_1000": 1000 * xacts / max(done_events, 1),
            "progress": progress,
            "check": dict(check),
        }
    finally:
        if spy is not None:
            stop_process(spy, "py-spy", 2)
        for process in children:
            process.stop()
        await conn.close()
        await admin.close()
        await cluster.drop_database(database)


#: What this program runs in a drain database (left out of the statement profile).
_OWN_STATEMENTS = (
    "SELECT EXISTS (SELECT 1 FROM inbox WHERE state",
    "SELECT count(*) FROM inbox WHERE state",
    "WITH moved AS ( INSERT INTO inbox",
    "SELECT (SELECT count(*) FROM message)",
    "BEGIN",
    "COMMIT",
)


async def _xacts(admin: asyncpg.Connection, database: str) -> int:
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    value = await admin.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
    )
    return int(value or 0)


# ---------------------------------------------------------------------------- the run


async def run(
    args: argparse.Namespace, sizes: Sizes, cluster: Cluster, root: Path
) -> dict[str, Any]:
    run_started = time.monotonic()
    facts = machine_facts()
    pg_version = await server_version(cluster.admin_dsn)
    portals = make_portals(args.rooms, 500, 1000)

    log("inserting portals")
    template_dsn = await cluster.create_database("proc_template")
    await ensure_schema(template_dsn, migrate=True)
    await insert_portals(template_dsn, portals, 500, 1000)
    await cluster.create_database("proc_drain_template", template="proc_template")
    wake_events: list[dict[str, Any]] = []
    if not args.skip_drain:
        log(f"building the drain template ({sizes.drain_events} events)")
        wake_events = await build_drain_template(
            cluster.dsn("proc_drain_template"), portals, sizes.drain_events
        )

    report: dict[str, Any] = {
        "benchmark": "processing",
        "machine": facts,
        "postgres": pg_version,
        "parameters": {
            "rooms": args.rooms,
            "rounds": sizes.rounds,
            "segment_s": sizes.segment_s,
            "drain_events": sizes.drain_events,
            "drain_rounds": sizes.drain_rounds,
            "max_backlog": sizes.max_backlog,
        },
        "sustained": {},
        "drain": {},
    }

    # --- sustained -------------------------------------------------------------------------
    if not args.skip_sustained:
        factory = PortalFactory(portals, seed=1)
        warm = factory.batch(10)
        # Enough transactions for the fastest intake seen (the segment is bounded by time).
        per_segment = math.ceil(sizes.segment_s * args.max_rate / 100)
        names = ["bridge", "floor"]
        for round_no in range(1, sizes.rounds + 1):
            if time.monotonic() - run_started > sizes.max_seconds / 2:
                log("time budget: no more sustained rounds")
                break
            txns = factory.batch(per_segment)
            rotation = names[(round_no - 1) % 2 :] + names[: (round_no - 1) % 2]
            for name in rotation:
                result = await sustained_run(
                    name, cluster, root, sizes, warm, txns, round_no, args.profile
                )
                report["sustained"].setdefault(name, []).append(result)
                log(
                    f"sustained round {round_no}/{sizes.rounds} {name:>6}: intake "
                    f"{result['intake_events_per_s']:7.0f} events/s, processed "
                    f"{result['messages_per_s']:7.0f} messages/s, backlog max "
                    f"{result['backlog_max']}, end {result['backlog_end']}, slope "
                    f"{result['backlog_slope_per_s']:+.0f}/s"
                )

    # --- drain -----------------------------------------------------------------------------
    if not args.skip_drain:
        names = ["bridge", "floor", "floor-full"]
        if not args.skip_split:
            names += list(SPLIT_WORKERS)
        for round_no in range(1, sizes.drain_rounds + 1):
            if time.monotonic() - run_started > sizes.max_seconds:
                log("time budget spent: no more drain rounds")
                break
            turn = (round_no - 1) % len(names)
            rotation = names[turn:] + names[:turn]
            for name in rotation:
                result = await drain_run(
                    name, cluster, root, sizes, wake_events, round_no, args.profile
                )
                report["drain"].setdefault(name, []).append(result)
                log(
                    f"drain round {round_no}/{sizes.drain_rounds} {name:>10}: "
                    f"{result['done']} events in {result['seconds']:.1f} s = "
                    f"{result['messages_per_s']:.0f} messages/s "
                    f"(CPU {result['cpu_ms_per_message']:.3f} ms/message, Postgres "
                    f"{result['pg_cpu_ms_per_message']:.3f}; "
                    f"{result['db_transactions_per_1000']:.0f} DB transactions per 1000)"
                )
        if args.statements:
            log("statement profile: one more bridge drain, every statement logged (slower)")
            result = await drain_run(
                "bridge", cluster, root, sizes, wake_events, 99, None, log_statements=True
            )
            report["statement_profile"] = {
                "messages_per_s_while_logging": result["messages_per_s"],
                "events": result["done"],
                "statements": result["statements"][:25],
            }
    report["seconds"] = round(time.monotonic() - run_started, 1)
    return report


# ---------------------------------------------------------------------------- output


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"sustained": {}, "drain": {}, "ratios": {}, "checks": []}
    for name, segs in report["sustained"].items():
        out["sustained"][name] = {
            key: statistics.median(s[key] for s in segs)
            for key in (
                "intake_events_per_s",
                "messages_per_s",
                "ack_p50_ms",
                "ack_p99_ms",
                "backlog_median",
                "backlog_slope_per_s",
                "cpu_ms_per_message",
                "pg_cpu_ms_per_message",
            )
        } | {
            "backlog_max": max(s["backlog_max"] for s in segs),
            "backlog_end_max": max(s["backlog_end"] for s in segs),
            "rounds": len(segs),
        }
        for i, seg in enumerate(segs, 1):
            c = seg["check"]
            out["checks"].append(
                (
                    f"sustained {name} #{i}: inbox rows = events sent, one message per processed",
                    c["inbox"] == seg["events_sent"]
                    and c["messages"] == c["processed"]
                    and c["other"] == 0
                    and c["dead_letters"] == 0,
                    f"{c['inbox']} / {seg['events_sent']} stored, {c['messages']} messages for "
                    f"{c['processed']} processed, {c['other']} ignored/dead",
                )
            )
    b, f = report["sustained"].get("bridge"), report["sustained"].get("floor")
    if b and f:
        n = min(len(b), len(f))
        out["ratios"]["sustained bridge/floor messages/s"] = statistics.median(
            b[i]["messages_per_s"] / f[i]["messages_per_s"] for i in range(n)
        )
    for name, runs in report["drain"].items():
        out["drain"][name] = {
            "messages_per_s": statistics.median(r["messages_per_s"] for r in runs),
            "min": min(r["messages_per_s"] for r in runs),
            "max": max(r["messages_per_s"] for r in runs),
            "seconds": statistics.median(r["seconds"] for r in runs),
            "cpu_ms_per_message": statistics.median(r["cpu_ms_per_message"] for r in runs),
            "pg_cpu_ms_per_message": statistics.median(r["pg_cpu_ms_per_message"] for r in runs),
            "db_transactions_per_1000": statistics.median(
                r["db_transactions_per_1000"] for r in runs
            ),
            "rounds": len(runs),
            "events": runs[0]["events"],
        }
        for i, r in enumerate(runs, 1):
            c = r["check"]
            out["checks"].append(
                (
                    f"drain {name} #{i}: messages = events",
                    c["messages"] == r["events"] and r["finished"],
                    f"{c['messages']} / {r['events']}",
                )
            )
            out["checks"].append(
                (
                    f"drain {name} #{i}: none ignored or dead",
                    c["other"] == 0 and c["dead_letters"] == 0,
                    f"{c['other']} ignored/dead, {c['dead_letters']} dead letters",
                )
            )
    drains = report["drain"]
    for measured, ref in (
        ("bridge", "floor"),
        ("bridge", "floor-full"),
        ("split-1", "bridge"),
        ("split-2", "split-1"),
        ("split-2", "bridge"),
    ):
        if measured in drains and ref in drains:
            n = min(len(drains[measured]), len(drains[ref]))
            out["ratios"][f"drain {measured}/{ref} messages/s"] = statistics.median(
                drains[measured][i]["messages_per_s"] / drains[ref][i]["messages_per_s"]
                for i in range(n)
            )
    return out


def print_report(report: dict[str, Any], out: TextIO) -> None:
    s = summarize(report)
    report["summary"] = s
    p = report["parameters"]
    print(header_line("Processing benchmark", report["machine"], report["postgres"]), file=out)
    print(
        f"{p['rooms']} portal rooms; sustained: {p['rounds']} rounds x {p['segment_s']:.0f} s per "
        f"server; drain: {p['drain_events']} events x {p['drain_rounds']} rounds; bridge "
        f"inbox.max_backlog {p.get('max_backlog') or 'default (20000)'}\n",
        file=out,
    )
    if s["sustained"]:
        print("Sustained (mode A intake while processing; medians over rounds):\n", file=out)
        markdown_table(
            [
                "server",
                "intake events/s",
                "processed msgs/s",
                "ack p50 ms",
                "ack p99 ms",
                "backlog median",
                "backlog max",
                "backlog slope /s",
                "CPU ms/msg",
                "PG CPU ms/msg",
            ],
            [
                [
                    name,
                    r["intake_events_per_s"],
                    r["messages_per_s"],
                    r["ack_p50_ms"],
                    r["ack_p99_ms"],
                    r["backlog_median"],
                    r["backlog_max"],
                    r["backlog_slope_per_s"],
                    r["cpu_ms_per_message"],
                    r["pg_cpu_ms_per_message"],
                ]
                for name, r in s["sustained"].items()
            ],
            out,
        )
        print(file=out)
    if s["drain"]:
        print(
            "Drain (N events preloaded, time until none pending; medians over rounds):\n", file=out
        )
        markdown_table(
            [
                "server",
                "events",
                "seconds",
                "messages/s",
                "min-max",
                "CPU ms/msg",
                "PG CPU ms/msg",
                "DB xacts per 1000",
            ],
            [
                [
                    name,
                    r["events"],
                    r["seconds"],
                    r["messages_per_s"],
                    f"{r['min']:.0f}-{r['max']:.0f}",
                    r["cpu_ms_per_message"],
                    r["pg_cpu_ms_per_message"],
                    r["db_transactions_per_1000"],
                ]
                for name, r in s["drain"].items()
            ],
            out,
        )
        print(file=out)
    if s["ratios"]:
        markdown_table(["ratio", "value"], [[k, v] for k, v in s["ratios"].items()], out)
        print(file=out)
    goal_rows = []
    if "bridge" in s["drain"]:
        v = s["drain"]["bridge"]["messages_per_s"]
        goal_rows.append(
            [
                "drain messages/s >= 10000",
                f"{v:.0f}",
                "ok"
                if v >= GOAL_MESSAGES_PER_S
                else f"MISSED (x{GOAL_MESSAGES_PER_S / v:.1f} needed)",
            ]
        )
    if "bridge" in s["sustained"]:
        r = s["sustained"]["bridge"]
        limit = p.get("max_backlog") or 20_000  # the bridge's own default
        # Flat (the slope under 2 % of the intake rate), or held at the back-pressure limit
        # (at most one transaction above it).
        bounded = r["backlog_slope_per_s"] < 0.02 * r["intake_events_per_s"] or (
            r["backlog_max"] <= limit + 100
            and r["backlog_end_max"] <= limit + 100
            and r["backlog_max"] >= 0.5 * limit
        )
        goal_rows.append(
            [
                "sustained backlog bounded",
                f"slope {r['backlog_slope_per_s']:+.0f}/s, max {r['backlog_max']}",
                "ok" if bounded else "MISSED",
            ]
        )
    if goal_rows:
        markdown_table(["goal", "measured", "verdict"], goal_rows, out)
        print(file=out)
    prof = report.get("statement_profile")
    if prof:
        print(
            f"Postgres time per statement in one bridge drain of {prof['events']} events with "
            f"every statement logged ({prof['messages_per_s_while_logging']:.0f} messages/s "
            "while logging): parse + bind + execute, server side\n",
            file=out,
        )
        markdown_table(
            ["statement", "calls/msg", "mean us", "us/msg"],
            [
                [r["statement"][:90], r["calls_per_message"], r["mean_us"], r["us_per_message"]]
                for r in prof["statements"][:15]
            ],
            out,
        )
        total = sum(r["us_per_message"] for r in prof["statements"])
        calls = sum(r["calls_per_message"] for r in prof["statements"])
        print(f"\nall statements: {calls:.2f} per message, {total:.0f} us per message\n", file=out)
    failed = [c for c in s["checks"] if not c[1]]
    for name, ok, detail in s["checks"]:
        print(f"check {name}: {detail} {'ok' if ok else 'FAILED'}", file=out)
    print(
        f"\n{'all checks passed' if not failed else f'{len(failed)} check(s) FAILED'}; "
        f"{report['seconds']} s",
        file=out,
    )


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.processing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--rounds", type=int, help="sustained rounds (default 3, quick 1)")
    parser.add_argument("--segment", type=float, help="seconds per sustained segment (15, quick 6)")
    parser.add_argument("--drain-events", type=int, help="N for the drain (100000, quick 10000)")
    parser.add_argument("--drain-rounds", type=int, help="drain rounds (2, quick 1)")
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument(
        "--max-rate",
        type=float,
        default=15000,
        help="events/s to prepare transactions for (the segment is time-bound)",
    )
    parser.add_argument(
        "--max-backlog",
        type=int,
        help="the bridge's appservice.inbox.max_backlog (back-pressure limit; default its own)",
    )
    parser.add_argument("--skip-sustained", action="store_true")
    parser.add_argument("--skip-drain", action="store_true")
    parser.add_argument(
        "--skip-split",
        action="store_true",
        help="leave out the drains of an intake process with 1 and 2 worker processes",
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="after the drains, one more bridge drain logging every statement's "
        "server time (log_min_duration_statement = 0), summarised per statement",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record py-spy profiles of the bridge (sustained and drain) into DIR",
    )
    args = parser.parse_args(argv)
    for name, value, low, high in (
        ("--rounds", args.rounds, 1, 20),
        ("--segment", args.segment, 1, 300),
        ("--drain-events", args.drain_events, 100, 1_000_000),
        ("--drain-rounds", args.drain_rounds, 1, 10),
        ("--rooms", args.rooms, 2, 100_000),
    ):
        if value is not None and not low <= value <= high:
            parser.error(f"{name} must be between {low} and {high}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_interrupts()
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        rounds=args.rounds or base.rounds,
        segment_s=args.segment or base.segment_s,
        drain_events=args.drain_events or base.drain_events,
        drain_rounds=args.drain_rounds or base.drain_rounds,
        drain_timeout=base.drain_timeout,
        settle_timeout=base.settle_timeout,
        max_seconds=base.max_seconds,
        max_backlog=args.max_backlog,
    )
    if args.profile:
        find_py_spy()
        args.profile.mkdir(parents=True, exist_ok=True)
    status = 1
    with workdir("bridge-bench-proc-") as root:
        cluster = Cluster(root)
        try:
            log("starting Postgres")
            cluster.start()
            report = asyncio.run(run(args, sizes, cluster, root))
            if args.json:
                report["summary"] = summarize(report)
                json.dump(report, sys.stdout, indent=2, default=str)
                print()
            else:
                print_report(report, sys.stdout)
            status = 0 if all(c[1] for c in summarize(report)["checks"]) else 1
        except KeyboardInterrupt:
            log("interrupted")
            status = 130
        except BenchError as exc:
            log(f"error: {exc}")
        finally:
            ignore_interrupts()
            cluster.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
