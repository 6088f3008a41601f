"""What every benchmark uses: processes (start a ``python -m`` module that prints ``READY``,
stop it by its PID, its CPU time, py-spy), a private Postgres, the bridge's benchmark config,
statistics, machine facts and Markdown tables. It imports no benchmark and nothing of the tests.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bridge.db.embedded import EmbeddedPostgres
from bridge.local.processes import child_env, http_status

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
#: The homeserver address in benchmark configs where no homeserver is needed (nothing listens).
UNUSED_HOMESERVER = "http://127.0.0.1:9"


class BenchError(RuntimeError):
    pass


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def bridge_config_dict(hs_token: str, port: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The benchmarks' bridge config (the bridge's defaults), with ``extra`` merged in."""
    base: dict[str, Any] = {
        "homeserver": {"address": UNUSED_HOMESERVER, "domain": "localhost"},
        "appservice": {
            "address": f"http://{HOST}:{port}",
            "hostname": HOST,
            "port": port,
            "id": "bench",
            "bot_username": "_pn_bot",
            "as_token": "bench-as-token",
            "hs_token": hs_token,
            "database": "embedded",
        },
        "bridge": {"permissions": {"*": "block", "localhost": "user"}},
        "api": {},
        "logging": {"level": "INFO"},
    }
    return merge_config(base, extra)


__all__ = [
    "HOST",
    "REPO_ROOT",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "UNUSED_HOMESERVER",
    "BenchError",
    "Child",
    "Cluster",
    "bridge_config_dict",
    "child_env",
    "code_version",
    "cpu_seconds",
    "find_py_spy",
    "free_port",
    "header_line",
    "http_status",
    "ignore_interrupts",
    "install_interrupts",
    "log",
    "log_offset",
    "machine_facts",
    "markdown_table",
    "merge_config",
    "percentile",
    "postgres_cpu_seconds",
    "server_version",
    "slope",
    "start_py_spy",
    "statement_profile",
    "stats",
    "stop_process",
    "tail",
    "with_database",
    "workdir",
]


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_interrupts() -> None:
    """Ctrl-C and SIGTERM end a run through its clean-up (also when started with SIGINT
    ignored, as background jobs of a non-interactive shell are)."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def ignore_interrupts() -> None:
    """During clean-up (every step of which is bounded in time)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# ---------------------------------------------------------------------------- processes


def tail(path: Path | None, lines: int = 30) -> str:
    """The last ``lines`` of a log file ("" if there is none)."""
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _read_from(path: Path, offset: int) -> str:
    """The text of ``path`` after its first ``offset`` bytes."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace")


@dataclass
class Child:
    """A process of ours: a ``python -m`` module (or any argv) that prints ``READY`` when up."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_text: str | None = "READY"
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def module(cls, name: str, module: str, args: Sequence[str], workdir: Path, **kw: Any) -> Child:
        return cls(name, [sys.executable, "-m", module, *args], workdir / f"{name}.log", **kw)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S, ready: Any = None) -> None:
        """Start and wait (bounded) for ``READY`` in its output, or for ``ready()`` to be true.

        Only what this start writes counts: the log is appended to, and a child started again
        under the same name (as each scenario of a benchmark does) finds the ``READY`` of its
        predecessor there; taking that for its own sends load at a port nobody listens on yet.
        """
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **self.env}
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as out:
            # Own session: a Ctrl-C in the terminal reaches only the benchmark, which then stops
            # its children itself, in order.
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode} on start:\n"
                    f"{tail(self.log_path)}"
                )
            if ready is not None:
                if ready():
                    return
            elif self.ready_text and self.ready_text in _read_from(self.log_path, offset):
                return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not start within {timeout:.0f} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, self.name, sig)

    def tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o711)  # as root, Postgres runs as an unprivileged user that must reach it
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Cluster:
    """A private embedded Postgres (``fsync`` and ``synchronous_commit`` on, as the bridge's)."""

    def __init__(self, root: Path) -> None:
        self._pg = EmbeddedPostgres(root / "pg", database="bench")
        self.admin_dsn = ""

    def start(self) -> str:
        self.admin_dsn = self._pg.start()
        return self.admin_dsn

    def stop(self) -> None:
        self._pg.stop()

    @property
    def log_path(self) -> Path:
        """The cluster's server log (where ``log_min_duration_statement`` writes)."""
        return self._pg.data_dir / "postgres.log"

    async def log_statements(self, database: str) -> None:
        """Log every statement of new sessions of ``database`` with its duration."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'ALTER DATABASE "{database}" SET log_min_duration_statement = 0')
        finally:
            await conn.close()

    @property
    def postmaster(self) -> int | None:
        return self._pg.postmaster_pid

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)

    async def create_database(self, name: str, template: str | None = None) -> str:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if template:
                await conn.execute(
                    f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
                )
            else:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn(name)

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def checkpoint(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], name: str, sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, by its own PID: signal, wait, then kill."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) did not stop; killing it")
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU time of one process (plus that of its reaped children), from /proc."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(postmaster: int | None) -> float:
    """CPU time of the whole cluster: the postmaster, its live children (backends, writer,
    checkpointer, autovacuum...) and, through the postmaster's counters, its exited children.
    """
    if postmaster is None:
        return 0.0
    total = cpu_seconds(postmaster, reaped_children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is not None and int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def find_py_spy() -> str:
    candidate = Path(sys.executable).with_name("py-spy")
    found = str(candidate) if candidate.exists() else shutil.which("py-spy")
    if not found:
        raise BenchError("--profile needs py-spy (pip install py-spy)")
    return found


def start_py_spy(py_spy: str, pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample ``pid`` into ``out`` (collapsed stacks) until stopped with SIGINT."""
    cmd = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "100", "-o", str(out)]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def code_version() -> str:
    """The commit measured, with "+changes" when bridge/ differs from it; "" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bridge"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+changes" if dirty else "")


# ---------------------------------------------------------------------------- statistics


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        nan = float("nan")
        return {"n": 0, "p50": nan, "p90": nan, "p99": nan, "max": nan, "mean": nan}
    return {
        "n": len(values),
        "p50": percentile(list(values), 50),
        "p90": percentile(list(values), 90),
        "p99": percentile(list(values), 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 with fewer than two."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / den


# ---------------------------------------------------------------------------- reporting


def machine_facts() -> dict[str, Any]:
    """nproc, ``free -h``'s memory line, Python, Postgres: what a results section quotes."""
    free = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["free", "-h"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        lines = [ln for ln in out.splitlines() if ln.startswith(("Mem:", "Swap:"))]
        free = "; ".join(" ".join(ln.split()) for ln in lines)
    return {
        "nproc": os.cpu_count(),
        "free_h": free,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "code": code_version(),
    }


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(line(cells[0]), file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for row in cells[1:]:
        print(line(row), file=out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def header_line(title: str, facts: dict[str, Any], pg: str) -> str:
    return (
        f"{title}, {facts['date']}, code {facts['code'] or '?'}; {facts['nproc']} CPUs "
        f"({facts['free_h']}), Python {facts['python']}, PostgreSQL {pg}"
    )


# ---------------------------------------------------------------------------- statement log

_LOG_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[\d+\] ", re.M)
_DURATION = re.compile(
    r"^(?:LOG|LOG:)?\s*duration: ([\d.]+) ms\s+(parse|bind|execute|statement)[^:]*:\s*(.*)", re.S
)


def log_offset(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def statement_profile(
    path: Path, offset: int, *, skip: Sequence[str] = (), width: int = 110
) -> list[dict[str, Any]]:
    """Server-side time per statement from a Postgres log written with
    ``log_min_duration_statement = 0``, from byte ``offset`` on: calls (executions) and the
    time of parse + bind + execute, per statement text (whitespace collapsed, cut at
    ``width``). Statements starting with any of ``skip`` are left out."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", errors="replace")
    starts = [m.end() for m in _LOG_ENTRY.finditer(text)]
    ends = [*(m.start() for m in _LOG_ENTRY.finditer(text)), len(text)][1:]
    total: dict[str, float] = {}
    calls: dict[str, int] = {}
    for start, end in zip(starts, ends, strict=True):
        entry = text[start:end]
        if entry.startswith("LOG:"):
            entry = entry[4:]
        m = _DURATION.match(entry.strip())
        if not m:
            continue
        statement = " ".join(m.group(3).split())
        if any(statement.startswith(s) for s in skip) or not statement:
            continue
        key = statement[:width]
        total[key] = total.get(key, 0.0) + float(m.group(1))
        if m.group(2) in ("execute", "statement"):
            calls[key] = calls.get(key, 0) + 1
    rows: list[dict[str, Any]] = [
        {
            "statement": k,
            "calls": calls.get(k, 0),
            "total_ms": v,
            "mean_us": 1000 * v / max(calls.get(k, 0), 1),
        }
        for k, v in total.items()
    ]
    rows.sort(key=lambda r: -float(r["total_ms"]))
    return rows
