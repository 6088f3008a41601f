"""Tests for the embedded PostgreSQL cluster (bridge.db.embedded).

These start real postmasters. Directories come from ``tempfile.mkdtemp`` (made 0755) rather
than pytest's ``tmp_path``: under root, ``/tmp/pytest-of-root`` is 0700 and the unprivileged
PostgreSQL user could not traverse it. Every postmaster a test starts is stopped by pid in
the fixture's teardown, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from bridge.db.embedded import EmbeddedPostgres, EmbeddedPostgresError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
CHILD_TIMEOUT_S = 90.0

CHILD_OWNER = """
import sys
from pathlib import Path
from bridge.db.embedded import EmbeddedPostgres

pg = EmbeddedPostgres(Path(sys.argv[1]), database=sys.argv[2])
dsn = pg.start()
print(pg.postmaster_pid, dsn, flush=True)
sys.stdin.read()  # block until killed
"""

CHILD_CONTENDER = """
import sys
from pathlib import Path
from bridge.db.embedded import EmbeddedPostgres, EmbeddedPostgresError

try:
    EmbeddedPostgres(Path(sys.argv[1])).start()
except EmbeddedPostgresError as exc:
    print(exc, flush=True)
    sys.exit(3)
print("second owner started", flush=True)
"""

CHILD_BUSY_QUERY = """
import asyncio, sys
import asyncpg

async def main() -> None:
    conn = await asyncpg.connect(sys.argv[1])
    await conn.execute("SET statement_timeout = '120s'")
    await conn.execute("DO $$ BEGIN LOOP PERFORM 1; END LOOP; END $$")

asyncio.run(main())
"""


# ---------------------------------------------------------------------- helpers


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return data[data.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def _wait_dead(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive after {timeout}s"
        time.sleep(0.02)


def _query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, timeout=15)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _socket_dir(dsn: str) -> Path:
    return Path(parse_qs(urlsplit(dsn).query)["host"][0])


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _tcp_listen_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def _unix_socket_paths(inodes: set[str]) -> set[str]:
    paths = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes:
            paths.add(fields[7])
    return paths


def _postgres_processes_under(root: Path) -> list[int]:
    """Any postgres process whose cwd lies under ``root`` (safety net for teardown)."""
    found = []
    prefix = os.path.realpath(root) + os.sep
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if cwd.startswith(prefix) and os.path.basename(argv0).startswith(b"postgres"):
            found.append(int(entry))
    return found


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def _read_line(proc: subprocess.Popen[str], timeout: float = CHILD_TIMEOUT_S) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child printed nothing in time"
    return proc.stdout.readline()


class Cleanup:
    """Tracks what a test started so teardown can stop it, by pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[EmbeddedPostgres] = []
        self.postmasters: list[int] = []
        self.children: list[subprocess.Popen[str]] = []

    def server(self, data_dir: Path, **kwargs: Any) -> EmbeddedPostgres:
        pg = EmbeddedPostgres(data_dir, **kwargs)
        self.servers.append(pg)
        return pg

    def started(self, pg: EmbeddedPostgres) -> int:
        pid = pg.postmaster_pid
        assert pid is not None
        self.postmasters.append(pid)
        return pid

    def child(self, script: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_child_env(),
            text=True,
        )
        self.children.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        for pg in self.servers:
            try:
                pg.stop()
            except EmbeddedPostgresError:
                pass
        for pid in self.postmasters:
            if _alive(pid):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown of a leftover postmaster
                try:
                    _wait_dead(pid, timeout=10)
                except AssertionError:
                    os.kill(pid, signal.SIGKILL)
        for pid in _postgres_processes_under(self.workdir):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bridge-embedded-test-"))
    path.chmod(0o755)  # the unprivileged PostgreSQL user must traverse it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cleanup(workdir: Path) -> Iterator[Cleanup]:
    tracker = Cleanup(workdir)
    try:
        yield tracker
    finally:
        tracker.close()


# ---------------------------------------------------------------------- tests


def test_fresh_start_runs_initdb_and_serves_only_a_private_unix_socket(
    workdir: Path, cleanup: Cleanup
) -> None:
    data = workdir / "data"
    pg = cleanup.server(data, database="bridge_test")
    assert not data.exists()

    dsn = pg.start()
    pid = cleanup.started(pg)

    assert (data / "PG_VERSION").is_file()
    assert dsn.startswith("postgresql://postgres@/bridge_test?host=")
    assert pg.dsn == dsn
    [row] = _query(
        dsn,
        "SELECT current_database(), current_user, current_setting('listen_addresses'),"
        " current_setting('fsync'), current_setting('max_connections')",
    )
    assert tuple(row) == ("bridge_test", "postgres", "", "on", "200")

    socket_dir = _socket_dir(dsn)
    assert socket_dir == data / "run"
    st = socket_dir.stat()
    assert st.st_mode & 0o777 == 0o700
    assert st.st_uid == _uid_of(pid)
    if IS_ROOT:
        assert _uid_of(pid) != 0, "postgres must not run as root"

    # The postmaster listens on its unix socket and on no TCP socket at all.
    inodes = _socket_inodes(pid)
    assert str(socket_dir / ".s.PGSQL.5432") in _unix_socket_paths(inodes)
    assert not inodes & _tcp_listen_inodes()

    # start() is idempotent; nothing but the data dir and its lock is left beside it.
    assert pg.start() == dsn
    assert pg.postmaster_pid == pid
    assert sorted(p.name for p in workdir.iterdir()) == ["data", "data.lock"]

    pg.stop()
    _wait_dead(pid, timeout=1)
    assert pg.postmaster_pid is None
    with pytest.raises(EmbeddedPostgresError):
        _ = pg.dsn
    pg.stop()  # no-op


def test_restart_reuses_the_cluster(workdir: Path, cleanup: Cleanup) -> None:
    data = workdir / "data"
    first = cleanup.server(data)
    dsn = first.start()
    first_pid = cleanup.started(first)
    _query(dsn, "CREATE TABLE survivors (name text)")
    _query(dsn, "INSERT INTO survivors VALUES ('row-1')")
    version = (data / "PG_VERSION").stat()

    first.stop()
    _wait_dead(first_pid, timeout=1)  # /proc based: a reparented zombie counts as gone

    second = cleanup.server(data)
    dsn2 = second.start()
    second_pid = cleanup.started(second)
    assert second_pid != first_pid
    assert [r["name"] for r in _query(dsn2, "SELECT name FROM survivors")] == ["row-1"]
    again = (data / "PG_VERSION").stat()
    assert (again.st_ino, again.st_mtime_ns) == (version.st_ino, version.st_mtime_ns)
    second.stop()
    assert not _alive(second_pid)


def test_postmaster_of_a_killed_owner_is_adopted(workdir: Path, cleanup: Cleanup) -> None:
    data = workdir / "data"
    owner = cleanup.child(CHILD_OWNER, str(data), "bridge_test")
    line = _read_line(owner)
    assert line, f"child owner failed (exit {owner.poll()})"
    pid_text, child_dsn = line.split()
    postmaster = int(pid_text)
    cleanup.postmasters.append(postmaster)
    _query(child_dsn, "CREATE TABLE t AS SELECT 42 AS answer")

    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=30)
    assert _alive(postmaster), "postmaster must outlive its killed owner"

    pg = cleanup.server(data, database="bridge_test")
    dsn = pg.start()
    assert pg.postmaster_pid == postmaster, "must adopt, not start a second postmaster"
    assert dsn == child_dsn
    assert _query(dsn, "SELECT answer FROM t")[0]["answer"] == 42

    pg.stop()
    _wait_dead(postmaster, timeout=1)
    assert not (data / "postmaster.pid").exists()


def test_stale_postmaster_pid_after_postmaster_was_killed(workdir: Path, cleanup: Cleanup) -> None:
    data = workdir / "data"
    pg = cleanup.server(data)
    dsn = pg.start()
    pid = cleanup.started(pg)
    _query(dsn, "CREATE TABLE committed (n int)")
    _query(dsn, "INSERT INTO committed SELECT generate_series(1, 1000)")

    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)
    pg.stop()  # the server is gone: only releases the lock
    assert (data / "postmaster.pid").exists(), "stale pid file expected"

    again = cleanup.server(data)
    dsn2 = again.start()
    new_pid = cleanup.started(again)
    assert new_pid != pid
    assert _query(dsn2, "SELECT count(*) AS n FROM committed")[0]["n"] == 1000
    again.stop()
    assert not _alive(new_pid)


def test_orphaned_busy_backend_does_not_block_restart(workdir: Path, cleanup: Cleanup) -> None:
    data = workdir / "data"
    pg = cleanup.server(data)
    dsn = pg.start()
    pid = cleanup.started(pg)

    busy = cleanup.child(CHILD_BUSY_QUERY, dsn)
    deadline = time.monotonic() + 30
    backends: list[asyncpg.Record] = []
    while not backends:
        assert busy.poll() is None and time.monotonic() < deadline, "busy query did not start"
        time.sleep(0.05)
        backends = _query(
            dsn, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'DO $$%' AND state = 'active'"
        )
    backend = backends[0]["pid"]

    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)
    assert _alive(backend), "the busy backend should outlive its postmaster for a while"
    pg.stop()

    again = cleanup.server(data)
    dsn2 = again.start()
    cleanup.started(again)
    assert not _alive(backend)
    assert _query(dsn2, "SELECT 1 AS one")[0]["one"] == 1


def test_stale_pid_file_naming_an_unrelated_live_process(workdir: Path, cleanup: Cleanup) -> None:
    data = workdir / "data"
    pg = cleanup.server(data)
    pg.start()
    cleanup.started(pg)
    pidfile = (data / "postmaster.pid").read_text()
    pg.stop()

    # Simulate pid reuse: the recorded pid now belongs to some other live process.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        lines = pidfile.split("\n")
        lines[0] = str(sleeper.pid)
        (data / "postmaster.pid").write_text("\n".join(lines))
        again = cleanup.server(data)
        again.start()
        new_pid = cleanup.started(again)
        assert new_pid != sleeper.pid
        assert sleeper.poll() is None, "must not touch the unrelated process"
        again.stop()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_second_owner_is_refused_while_the_first_runs(workdir: Path, cleanup: Cleanup) -> None:
    data = workdir / "data"
    pg = cleanup.server(data)
    pg.start()
    pid = cleanup.started(pg)

    result = subprocess.run(
        [sys.executable, "-c", CHILD_CONTENDER, str(data)],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "in use" in result.stdout
    assert f"pid {os.getpid()}" in result.stdout

    # Another object in this very process is refused too.
    with pytest.raises(EmbeddedPostgresError, match="in use"):
        cleanup.server(data).start()
    assert pg.postmaster_pid == pid

    pg.stop()
    later = cleanup.server(data)  # the lock is free again
    later.start()
    cleanup.started(later)
    later.stop()


@pytest.mark.skipif(not IS_ROOT, reason="needs root: postgres runs as another user only then")
def test_untraversable_parent_directory_is_reported(workdir: Path, cleanup: Cleanup) -> None:
    private = workdir / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    data = private / "data"

    with pytest.raises(EmbeddedPostgresError) as excinfo:
        cleanup.server(data).start()
    message = str(excinfo.value)
    assert f"directory {private} " in message
    assert "chmod o+x" in message
    assert not (data / "PG_VERSION").exists()

    private.chmod(0o755)  # once fixed it works, so the failed attempt released the lock
    pg = cleanup.server(data)
    pg.start()
    cleanup.started(pg)
    pg.stop()


def test_long_data_dir_path_uses_a_short_private_socket_dir(
    workdir: Path, cleanup: Cleanup
) -> None:
    data = workdir / ("d" * 50) / ("e" * 50) / "data"
    assert len(str(data / "run" / ".s.PGSQL.5432")) > 100
    pg = cleanup.server(data)
    dsn = pg.start()
    pid = cleanup.started(pg)

    socket_dir = _socket_dir(dsn)
    assert socket_dir.parent == Path(tempfile.gettempdir())
    assert socket_dir.name.startswith("bridge-pg-")
    st = socket_dir.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, _uid_of(pid))
    assert _query(dsn, "SELECT current_database() AS db")[0]["db"] == "bridge"

    pg.stop()
    assert not socket_dir.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another OS user")
def test_unreachable_installation_is_run_from_a_reachable_copy() -> None:
    """A virtualenv under a private (0700) directory: its binaries are copied where the user can
    reach them, and they run."""
    from bridge.db.embedded import postgres_bin_dir
    from bridge.db.pg_os_user import BINARY_CACHE, reachable_binaries, resolve_identity

    private = Path(tempfile.mkdtemp(prefix="bridge-private-"))
    try:
        private.chmod(0o700)
        # Laid out as in site-packages: the package, and the wheel's bundled libraries.
        package = postgres_bin_dir().parent.parent
        install = private / package.name / "pginstall"
        shutil.copytree(package / "pginstall", install, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, private / libs.name, symlinks=True)
        identity = resolve_identity(None)
        found = reachable_binaries(install / "bin", identity)
        assert BINARY_CACHE in found.parents
        assert reachable_binaries(install / "bin", identity) == found  # copied once, reused
        version = subprocess.run(
            [str(found / "postgres"), "--version"],
            capture_output=True,
            text=True,
            user=identity.uid,
            group=identity.gid,
            extra_groups=[],
            check=True,
            timeout=30,
        )
        assert "PostgreSQL" in version.stdout
        # initdb loads the bundled libraries too (the copy must keep their relative place).
        subprocess.run(
            [str(found / "initdb"), "--version"],
            capture_output=True,
            text=True,
            user=identity.uid,
            group=identity.gid,
            extra_groups=[],
            check=True,
            timeout=30,
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)
