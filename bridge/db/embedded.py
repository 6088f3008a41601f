"""A private PostgreSQL cluster owned by the bridge daemon (``database: embedded``).

:class:`EmbeddedPostgres` initialises a cluster in a data directory on first use, starts it
listening only on a unix socket in a private directory, reuses it across restarts, adopts a
postmaster orphaned by a killed previous owner, and stops it again on ``stop()``.

The PostgreSQL binaries come from the ``pgserver`` wheel; only its ``bin`` directory is used.
PostgreSQL refuses to run as root, so when the bridge runs as root every PostgreSQL command
runs as an unprivileged system user (``bridge-postgres`` unless configured otherwise).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

__all__ = ["DEFAULT_OS_USER", "EmbeddedPostgres", "EmbeddedPostgresError", "postgres_bin_dir"]

log = logging.getLogger(__name__)

DEFAULT_OS_USER = "bridge-postgres"
"""OS user that runs PostgreSQL when the bridge runs as root and no ``os_user`` is given."""

_SUPERUSER = "postgres"
_DEFAULT_PORT = 5432
_MAX_SOCKET_PATH_BYTES = 100
_TEMP_SOCKET_PREFIX = "bridge-pg-"
_LOG_TAIL_LINES = 40
_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60
_COMMAND_TIMEOUT_S = 180.0
_PSQL_CONNECT_TIMEOUT_S = 10
_LOG_ROTATE_BYTES = 16 * 1024 * 1024
_SETTINGS_FILE = "bridge.conf"
_INCLUDE_LINE = f"include_if_exists = '{_SETTINGS_FILE}'"
_LOG_FILE = "postgres.log"
_SOCKET_SUBDIR = "run"
_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")

# Characters that pg_ctl cannot pass through its `/bin/sh -c "exec ... -D \"<dir>\""` command line.
_SHELL_UNSAFE = frozenset('"\\$`\n\r\0')
# Characters that break libpq's comma-separated host list or the unix_socket_directories list.
_SOCKET_UNSAFE = frozenset(",\"'\\")
_OS_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")

_SERVER_SETTINGS: tuple[tuple[str, str], ...] = (
    # No TCP at all; the socket directory is private and the socket itself owner-only.
    ("listen_addresses", "''"),
    ("unix_socket_permissions", "0700"),
    # Sized for one bridge process with a few connection pools.
    ("max_connections", "200"),
    ("shared_buffers", "128MB"),
    ("effective_cache_size", "512MB"),
    ("work_mem", "8MB"),
    ("maintenance_work_mem", "64MB"),
    # Durability: the bridge's state must survive power loss.
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
    ("timezone", "'UTC'"),
    ("log_timezone", "'UTC'"),
    ("log_line_prefix", "'%m [%p] '"),
)


class EmbeddedPostgresError(RuntimeError):
    """Raised when the embedded PostgreSQL cluster cannot be set up, started or stopped."""


@dataclass(frozen=True)
class _Identity:
    """OS identity that PostgreSQL commands run as."""

    uid: int
    gid: int
    name: str
    home: str
    switch: bool  # True when we run as root and must drop privileges for every command


@dataclass(frozen=True)
class _PidFile:
    """The parts of ``postmaster.pid`` that matter here (see PostgreSQL's pidfile.h)."""

    pid: int
    data_dir: str | None
    port: int | None
    socket_dir: str | None
    listen_address: str | None
    status: str | None


def postgres_bin_dir() -> Path:
    """Return the directory holding the PostgreSQL binaries shipped by ``pgserver``."""
    # Importing pgserver pulls in platformdirs, which warns when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """Owns a private PostgreSQL cluster living in ``data_dir``.

    Ownership is exclusive across processes: from :meth:`start` until :meth:`stop` an
    ``flock`` is held on ``<data_dir>.lock``. A process killed with SIGKILL releases it
    implicitly and the next owner adopts the still-running postmaster.
    """

    def __init__(
        self, data_dir: Path, *, database: str = "bridge", os_user: str | None = None
    ) -> None:
        """Describe the cluster; nothing happens on disk until :meth:`start`.

        ``os_user`` names the unprivileged OS user that runs PostgreSQL when the bridge runs
        as root (default ``bridge-postgres``, created if missing); it is ignored otherwise.
        """
        raw = os.fsencode(database)
        if not database or b"\0" in raw or len(raw) > 63:
            raise EmbeddedPostgresError(
                f"invalid database name {database!r}: must be 1-63 bytes without NUL"
            )
        self._data_dir = Path(os.path.abspath(os.fspath(data_dir)))
        self._database = database
        self._os_user = os_user
        self._lock_path = self._data_dir.with_name(self._data_dir.name + ".lock")
        self._mutex = threading.RLock()
        self._lock_fd: int | None = None
        self._identity: _Identity | None = None
        self._bin_dir: Path | None = None
        self._socket_dir: Path | None = None
        self._port = _DEFAULT_PORT
        self._dsn: str | None = None

    # ------------------------------------------------------------------ public API

    def start(self) -> str:
        """Start (or adopt) the cluster and make sure ``database`` exists; return its DSN.

        Blocking and idempotent. The DSN looks like
        ``postgresql://postgres@/bridge?host=/socket/dir&port=5432`` and works with asyncpg.
        """
        with self._mutex:
            if self._dsn is not None and self._server_alive():
                return self._dsn
            _validate_data_dir_path(self._data_dir)
            self._bin_dir = self._bin_dir or _locate_binaries()
            self._identity = self._identity or _resolve_identity(self._os_user)
            try:
                _make_parent_dirs(self._data_dir, self._identity)
            except OSError as exc:
                raise EmbeddedPostgresError(
                    f"cannot create {self._data_dir.parent}: {exc}"
                ) from exc
            self._acquire_lock()
            try:
                self._bring_up()
            except OSError as exc:
                self._abort_start()
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self._data_dir} failed: {exc}"
                ) from exc
            except BaseException:
                self._abort_start()
                raise
            return self.dsn

    def stop(self) -> None:
        """Fast-shutdown the server this object started or adopted; no-op if not running.

        Blocking (``pg_ctl stop -m fast -w``). Releases the data directory lock.
        """
        with self._mutex:
            if self._lock_fd is None:
                return
            try:
                pidfile = _read_pidfile(self._pidfile_path)
                if pidfile is not None and self._owns_postmaster(pidfile):
                    self._pg_ctl_stop()
                else:
                    log.info("embedded PostgreSQL in %s is not running", self._data_dir)
                self._remove_temp_socket_dir()
            finally:
                self._dsn = None
                self._release_lock()

    @property
    def dsn(self) -> str:
        """The asyncpg DSN of the started cluster; raises if :meth:`start` has not succeeded."""
        if self._dsn is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {self._data_dir} is not started")
        return self._dsn

    @property
    def postmaster_pid(self) -> int | None:
        """PID from ``postmaster.pid`` if it is a live postmaster of this data dir, else None."""
        pidfile = _read_pidfile(self._pidfile_path)
        if pidfile is None or not self._owns_postmaster(pidfile):
            return None
        return pidfile.pid

    @property
    def data_dir(self) -> Path:
        """Absolute path of the cluster's data directory."""
        return self._data_dir

    def __enter__(self) -> EmbeddedPostgres:
        """Start the cluster; see :meth:`start`."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the cluster; see :meth:`stop`."""
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self._data_dir)!r}, database={self._database!r})"

    # ------------------------------------------------------------------ start sequence

    def _bring_up(self) -> None:
        """With the lock held: initialise if needed, adopt or start, ensure the database."""
        self._check_access([self._data_dir.parent], [self._bin()])
        self._ensure_cluster()
        pidfile = self._adoptable_postmaster()
        if pidfile is not None:
            self._adopt(pidfile)
        else:
            self._start_server()
        self._ensure_database()
        assert self._socket_dir is not None
        self._dsn = _make_dsn(self._socket_dir, self._port, self._database)
        log.info("embedded PostgreSQL ready (pid %s): %s", self.postmaster_pid, self._dsn)

    def _abort_start(self) -> None:
        """Undo a failed start: stop a server we may have left running, release the lock."""
        try:
            pidfile = _read_pidfile(self._pidfile_path)
            if pidfile is not None and self._owns_postmaster(pidfile):
                self._pg_ctl_stop()
            self._remove_temp_socket_dir()
        except EmbeddedPostgresError:
            log.exception("could not stop embedded PostgreSQL after a failed start")
        finally:
            self._dsn = None
            self._release_lock()

    def _ensure_cluster(self) -> None:
        """Run initdb unless the data directory already holds a cluster; fix its ownership."""
        if not (self._data_dir / "PG_VERSION").is_file():
            self._initdb()
        self._chown_tree_if_needed(self._data_dir)
        self._secure_dir(self._data_dir)
        self._ensure_include_line()
        self._write_settings()

    def _initdb(self) -> None:
        """Initialise a new cluster, atomically (staging directory + rename) when possible."""
        data = self._data_dir
        if data.exists():
            if not data.is_dir() or any(data.iterdir()):
                raise EmbeddedPostgresError(
                    f"{data} exists and is not empty, but is not a PostgreSQL data directory "
                    "(no PG_VERSION); refusing to touch it. Point the bridge at an empty or "
                    "missing directory."
                )
        self._remove_stale_staging_dirs()
        if data.exists() and os.path.ismount(data):
            self._run_initdb(data)
            return
        staging = Path(tempfile.mkdtemp(prefix=self._staging_prefix, dir=data.parent))
        try:
            self._run_initdb(staging)
            self._append_include_line(staging / "postgresql.conf")
            os.rename(staging, data)  # replaces an empty directory atomically
        except OSError as exc:
            log.info("cannot move the new cluster into %s (%s); initialising in place", data, exc)
            _rmtree(staging)
            self._run_initdb(data)
            return
        except BaseException:
            _rmtree(staging)
            raise
        _fsync_dir(data.parent)

    def _run_initdb(self, target: Path) -> None:
        """Run initdb into ``target`` (an existing empty directory or a missing path)."""
        target.mkdir(mode=0o700, exist_ok=True)
        self._secure_dir(target)
        log.info("initialising embedded PostgreSQL cluster in %s", self._data_dir)
        self._run(
            [
                str(self._bin() / "initdb"),
                "-D",
                str(target),
                "-U",
                _SUPERUSER,
                # Local (socket) connections are trusted; the socket dir is private. There is no
                # TCP listener, and host lines reject anyway should one ever be configured.
                "--auth-local=trust",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--locale=C",
                "--data-checksums",
            ],
            what="initdb",
        )

    def _adoptable_postmaster(self) -> _PidFile | None:
        """Return the running postmaster to adopt, cleaning up after a dead one.

        A live postmaster for this data directory that is not ready, listens on TCP, or whose
        socket vanished is stopped so that a clean start follows.
        """
        pidfile_path = self._pidfile_path
        if not pidfile_path.exists():
            return None
        pidfile = _read_pidfile(pidfile_path)
        if pidfile is None or not self._owns_postmaster(pidfile):
            self._remove_stale_pidfile(pidfile)
            return None
        socket_ok = (
            pidfile.socket_dir is not None
            and pidfile.port is not None
            and _is_socket(Path(pidfile.socket_dir) / f".s.PGSQL.{pidfile.port}")
        )
        if pidfile.status == "ready" and not pidfile.listen_address and socket_ok:
            return pidfile
        log.warning(
            "postmaster %d of %s is unusable (status %r, listen %r, socket ok %s); restarting it",
            pidfile.pid,
            self._data_dir,
            pidfile.status,
            pidfile.listen_address,
            socket_ok,
        )
        self._socket_dir = Path(pidfile.socket_dir) if pidfile.socket_dir else None
        self._port = pidfile.port or _DEFAULT_PORT
        self._pg_ctl_stop()
        self._remove_temp_socket_dir()
        return None

    def _adopt(self, pidfile: _PidFile) -> None:
        """Take over a running postmaster left behind by a previous (killed) owner."""
        assert pidfile.socket_dir is not None and pidfile.port is not None
        log.warning(
            "adopting running PostgreSQL postmaster %d for %s (previous owner went away)",
            pidfile.pid,
            self._data_dir,
        )
        self._socket_dir = Path(pidfile.socket_dir)
        self._port = pidfile.port

    def _start_server(self) -> None:
        """Start a postmaster with ``pg_ctl start -w`` on a private socket directory."""
        self._port = _DEFAULT_PORT
        self._kill_orphaned_server_processes()
        self._socket_dir = self._prepare_socket_dir()
        self._rotate_log()
        options = [
            "-c",
            "listen_addresses=",
            "-c",
            f"unix_socket_directories={self._socket_dir}",
            "-p",
            str(self._port),
        ]
        log.info("starting embedded PostgreSQL in %s", self._data_dir)
        self._run(
            [
                str(self._bin() / "pg_ctl"),
                "start",
                "-D",
                str(self._data_dir),
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "-l",
                str(self._log_path),
                "-o",
                shlex.join(options),
            ],
            what="pg_ctl start",
            timeout=_START_TIMEOUT_S + 30,
        )

    def _ensure_database(self) -> None:
        """Create the configured database unless it exists."""
        literal = "'" + self._database.replace("'", "''") + "'"
        # The name is passed as a properly quoted literal (standard_conforming_strings is on).
        query = f"SELECT 1 FROM pg_catalog.pg_database WHERE datname = {literal}"  # noqa: S608
        found = self._psql(query)
        if found.strip() == "1":
            return
        identifier = '"' + self._database.replace('"', '""') + '"'
        log.info("creating database %s in embedded PostgreSQL", self._database)
        self._psql(f"CREATE DATABASE {identifier}")

    def _psql(self, sql: str) -> str:
        """Run one SQL statement as the superuser against the ``postgres`` database."""
        assert self._socket_dir is not None
        return self._run(
            [
                str(self._bin() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self._socket_dir),
                "-p",
                str(self._port),
                "-U",
                _SUPERUSER,
                "-d",
                "postgres",
                "-c",
                sql,
            ],
            what="psql",
        )

    def _pg_ctl_stop(self) -> None:
        """Fast shutdown, waiting until the postmaster has exited."""
        log.info("stopping embedded PostgreSQL in %s", self._data_dir)
        self._run(
            [
                str(self._bin() / "pg_ctl"),
                "stop",
                "-D",
                str(self._data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(_STOP_TIMEOUT_S),
            ],
            what="pg_ctl stop",
            timeout=_STOP_TIMEOUT_S + 30,
        )

    # ------------------------------------------------------------------ postmaster state

    @property
    def _pidfile_path(self) -> Path:
        return self._data_dir / "postmaster.pid"

    @property
    def _log_path(self) -> Path:
        return self._data_dir / _LOG_FILE

    @property
    def _staging_prefix(self) -> str:
        return f".{self._data_dir.name}.initdb-"

    def _server_alive(self) -> bool:
        pidfile = _read_pidfile(self._pidfile_path)
        return pidfile is not None and self._owns_postmaster(pidfile)

    def _owns_postmaster(self, pidfile: _PidFile) -> bool:
        """True if ``pidfile`` names a live postmaster serving this data directory."""
        if not _pid_alive(pidfile.pid) or pidfile.data_dir is None:
            return False
        try:
            same_dir = os.path.samefile(pidfile.data_dir, self._data_dir)
        except OSError:
            return False
        return same_dir and _looks_like_postmaster(pidfile.pid)

    def _kill_orphaned_server_processes(self) -> None:
        """SIGKILL server processes of a dead postmaster that still run in the data dir.

        Backends busy in a query notice postmaster death late; while they stay attached to
        the old shared memory a new postmaster refuses to start. Called with the lock held
        and no live postmaster, so every such process is an orphan; crash recovery follows.
        """
        orphans = _server_processes_in(self._data_dir)
        if not orphans:
            return
        log.warning(
            "killing %d orphaned PostgreSQL process(es) of %s: %s",
            len(orphans),
            self._data_dir,
            orphans,
        )
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not _wait_for_exit(orphans, _STOP_TIMEOUT_S):
            raise EmbeddedPostgresError(
                f"orphaned PostgreSQL processes {orphans} of {self._data_dir} did not exit"
            )

    def _remove_stale_pidfile(self, pidfile: _PidFile | None) -> None:
        """Delete a ``postmaster.pid`` whose process is gone (or is something else now)."""
        log.warning(
            "removing stale postmaster.pid in %s (pid %s is not a running postmaster); "
            "PostgreSQL will run crash recovery",
            self._data_dir,
            pidfile.pid if pidfile else "unreadable",
        )
        if pidfile is not None and pidfile.socket_dir and pidfile.port is not None:
            socket_dir = Path(pidfile.socket_dir)
            if _is_temp_socket_dir(socket_dir):
                _remove_socket_files(socket_dir, pidfile.port)
                _rmdir_quietly(socket_dir)
        self._pidfile_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ files and directories

    def _prepare_socket_dir(self) -> Path:
        """Return a private (0700, owned by the PostgreSQL user) socket directory."""
        preferred = self._data_dir / _SOCKET_SUBDIR
        if _socket_dir_usable(preferred, self._port):
            preferred.mkdir(mode=0o700, exist_ok=True)
            socket_dir = preferred
        else:
            socket_dir = Path(tempfile.mkdtemp(prefix=_TEMP_SOCKET_PREFIX))
            log.info("socket path under %s is too long; using %s", self._data_dir, socket_dir)
            if not _socket_dir_usable(socket_dir, self._port):
                _rmdir_quietly(socket_dir)
                raise EmbeddedPostgresError(
                    f"no usable unix socket directory: {preferred} and {socket_dir} are too long "
                    f"or contain one of {''.join(sorted(_SOCKET_UNSAFE))!r}; "
                    "use a shorter data directory path or set TMPDIR"
                )
            self._check_access([socket_dir.parent], [])
        self._secure_dir(socket_dir)
        _remove_socket_files(socket_dir, self._port)  # leftovers of a killed postmaster
        return socket_dir

    def _remove_temp_socket_dir(self) -> None:
        """Remove a socket directory we made under the temp dir (postgres emptied it)."""
        socket_dir = self._socket_dir
        if socket_dir is not None and _is_temp_socket_dir(socket_dir):
            _remove_socket_files(socket_dir, self._port)
            _rmdir_quietly(socket_dir)
        self._socket_dir = None

    def _remove_stale_staging_dirs(self) -> None:
        """Delete half-finished initdb staging dirs of a killed earlier start."""
        prefix = self._staging_prefix
        for entry in os.scandir(self._data_dir.parent):
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                log.warning("removing incomplete cluster %s", entry.path)
                _rmtree(Path(entry.path))

    def _ensure_include_line(self) -> None:
        """Make ``postgresql.conf`` include the bridge-managed settings file."""
        conf = self._data_dir / "postgresql.conf"
        fd = os.open(conf, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            present = _INCLUDE_LINE.encode() in fh.read()
        if not present:
            self._append_include_line(conf)

    @staticmethod
    def _append_include_line(conf: Path) -> None:
        text = f"\n# Settings managed by the bridge, rewritten at every start.\n{_INCLUDE_LINE}\n"
        fd = os.open(conf, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode())

    def _write_settings(self) -> None:
        """(Re)write the bridge-managed settings file; ALTER SYSTEM still overrides it."""
        lines = [
            "# Managed by the bridge (bridge.db.embedded); rewritten at every start.",
            "# Override with ALTER SYSTEM (postgresql.auto.conf) if you must.",
            *(f"{name} = {value}" for name, value in _SERVER_SETTINGS),
        ]
        target = self._data_dir / _SETTINGS_FILE
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            identity = self._ident()
            if identity.switch:
                os.fchown(fd, identity.uid, identity.gid)
            os.write(fd, ("\n".join(lines) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    def _rotate_log(self) -> None:
        """Keep ``postgres.log`` bounded: move a large one aside before starting."""
        try:
            size = self._log_path.stat().st_size
        except FileNotFoundError:
            return
        if size > _LOG_ROTATE_BYTES:
            os.replace(self._log_path, self._log_path.with_name(_LOG_FILE + ".1"))

    def _secure_dir(self, path: Path) -> None:
        """Make ``path`` 0700 and owned by the PostgreSQL user, never following a symlink.

        As root we work inside directories the PostgreSQL user controls, so everything is
        done through a descriptor opened with O_NOFOLLOW.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise EmbeddedPostgresError(f"{path} is not a usable directory: {exc}") from exc
        try:
            identity = self._ident()
            if identity.switch:
                os.fchown(fd, identity.uid, identity.gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)

    def _chown_tree_if_needed(self, root: Path) -> None:
        """Give an existing cluster to the PostgreSQL user if another user owns it."""
        identity = self._ident()
        if not identity.switch or root.stat().st_uid == identity.uid:
            return
        log.warning("changing ownership of %s to %s", root, identity.name)
        for dirpath, dirnames, filenames in os.walk(root):
            os.chown(dirpath, identity.uid, identity.gid, follow_symlinks=False)
            for name in (*dirnames, *filenames):
                os.chown(
                    os.path.join(dirpath, name), identity.uid, identity.gid, follow_symlinks=False
                )

    def _check_access(self, dirs: Iterable[Path], searchable: Iterable[Path]) -> None:
        """Raise unless the PostgreSQL user can reach ``dirs`` and search ``searchable``."""
        identity = self._ident()
        if not identity.switch:
            return
        for target in dirs:
            _check_reachable(target, identity)
        for target in searchable:
            _check_reachable(target, identity)
            for name in _REQUIRED_BINARIES:
                binary = target / name
                if not _permits(binary.stat(), identity, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                    raise EmbeddedPostgresError(
                        f"{binary} is not executable by PostgreSQL's OS user {identity.name!r}"
                    )

    # ------------------------------------------------------------------ lock

    def _acquire_lock(self) -> None:
        """Take the exclusive lock on ``<data_dir>.lock`` (no-op if this object holds it)."""
        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise EmbeddedPostgresError(f"cannot open lock file {self._lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_lock_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL data directory {self._data_dir} is in use by another "
                    f"bridge process (pid {holder}); lock file {self._lock_path}"
                ) from None
            raise EmbeddedPostgresError(f"cannot lock {self._lock_path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the only descriptor releases the flock

    # ------------------------------------------------------------------ running commands

    def _bin(self) -> Path:
        assert self._bin_dir is not None
        return self._bin_dir

    def _ident(self) -> _Identity:
        assert self._identity is not None
        return self._identity

    def _run(self, args: list[str], *, what: str, timeout: float = _COMMAND_TIMEOUT_S) -> str:
        """Run a PostgreSQL command as the PostgreSQL OS user; return its combined output.

        Output goes to a temporary *file*: a postmaster started by pg_ctl must never inherit
        a pipe we are reading, or we would wait for it forever.
        """
        identity = self._ident()
        log.debug("running %s", shlex.join(args))
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.run(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=_child_env(identity),
                    cwd="/",
                    timeout=timeout,
                    check=False,
                    user=identity.uid if identity.switch else None,
                    group=identity.gid if identity.switch else None,
                    extra_groups=[] if identity.switch else None,
                )
            except subprocess.TimeoutExpired:
                raise EmbeddedPostgresError(
                    self._failure(what, args, f"timed out after {timeout:g}s", _read_all(out))
                ) from None
            except OSError as exc:
                raise EmbeddedPostgresError(
                    self._failure(what, args, f"could not be run: {exc}", "")
                ) from exc
            output = _read_all(out)
        if proc.returncode != 0:
            raise EmbeddedPostgresError(
                self._failure(what, args, f"failed with exit status {proc.returncode}", output)
            )
        return output

    def _failure(self, what: str, args: list[str], reason: str, output: str) -> str:
        parts = [f"{what} {reason}: {shlex.join(args)}"]
        if output.strip():
            parts.append(f"--- output ---\n{_last_lines(output)}")
        log_tail = _tail_file(self._log_path)
        if log_tail:
            parts.append(f"--- last lines of {self._log_path} ---\n{log_tail}")
        return "\n".join(parts)


# ---------------------------------------------------------------------- module helpers


def _locate_binaries() -> Path:
    bin_dir = postgres_bin_dir()
    missing = [name for name in _REQUIRED_BINARIES if not (bin_dir / name).is_file()]
    if missing:
        raise EmbeddedPostgresError(
            f"PostgreSQL binaries {missing} not found in {bin_dir}; is pgserver installed?"
        )
    return bin_dir


def _resolve_identity(os_user: str | None) -> _Identity:
    """Decide which OS user runs PostgreSQL (creating it when running as root)."""
    if os.geteuid() != 0:
        entry = _getpwuid(os.geteuid())
        return _Identity(os.geteuid(), os.getegid(), entry[0], entry[1], switch=False)
    name = os_user or DEFAULT_OS_USER
    if not _OS_USER_RE.match(name):
        raise EmbeddedPostgresError(f"invalid OS user name for PostgreSQL: {name!r}")
    pw = _ensure_os_user(name)
    if pw.pw_uid == 0:
        raise EmbeddedPostgresError(
            f"OS user {name!r} has uid 0; PostgreSQL must run as an unprivileged user"
        )
    return _Identity(pw.pw_uid, pw.pw_gid, name, pw.pw_dir, switch=True)


def _getpwuid(uid: int) -> tuple[str, str]:
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return str(uid), os.environ.get("HOME", "/")
    return pw.pw_name, pw.pw_dir


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating a system user if needed."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/usr/bin/false"
    candidates = ("/usr/sbin/useradd", "/sbin/useradd", "/usr/bin/useradd")
    useradd = next((p for p in candidates if os.path.exists(p)), "useradd")
    cmd = [useradd, "--system", "--no-create-home", "--shell", shell, name]
    log.info("creating system user %s for embedded PostgreSQL", name)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedPostgresError(
            f"cannot create OS user {name!r} ({shlex.join(cmd)}): {exc}; create it manually"
        ) from exc
    try:
        return pwd.getpwnam(name)  # also covers losing a creation race (exit status 9)
    except KeyError:
        raise EmbeddedPostgresError(
            f"cannot create OS user {name!r}: {shlex.join(cmd)} exited with "
            f"{proc.returncode}: {_last_lines(proc.stdout + proc.stderr)}"
        ) from None


def _child_env(identity: _Identity) -> dict[str, str]:
    """Environment for PostgreSQL commands: no inherited PG* variables, C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["PGCONNECT_TIMEOUT"] = str(_PSQL_CONNECT_TIMEOUT_S)
    if identity.switch:
        env.update(HOME=identity.home, USER=identity.name, LOGNAME=identity.name)
    return env


def _validate_data_dir_path(data_dir: Path) -> None:
    bad = sorted(_SHELL_UNSAFE.intersection(str(data_dir)))
    if bad:
        raise EmbeddedPostgresError(
            f"data directory path {str(data_dir)!r} contains characters pg_ctl cannot handle: "
            f"{bad!r}"
        )
    if data_dir.parent == data_dir:
        raise EmbeddedPostgresError("the data directory cannot be the filesystem root")


def _make_parent_dirs(data_dir: Path, identity: _Identity) -> None:
    """Create missing ancestors; as root make the ones we create traversable (0755)."""
    missing: list[Path] = []
    for parent in [data_dir.parent, *data_dir.parent.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):
        try:
            parent.mkdir(mode=0o755)
        except FileExistsError:
            continue
        if identity.switch:
            os.chmod(parent, 0o755)  # noqa: S103 (umask may have stripped o+x; we created it)


def _check_reachable(target: Path, identity: _Identity) -> None:
    """Raise naming the first directory on the way to ``target`` the user cannot search."""
    chains = [target]
    real = Path(os.path.realpath(target))
    if real != target:
        chains.append(real)
    for path in chains:
        for directory in [*reversed(path.parents), path]:
            try:
                st = directory.stat()
            except OSError as exc:
                raise EmbeddedPostgresError(f"cannot inspect {directory}: {exc}") from exc
            if not _permits(st, identity, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                raise EmbeddedPostgresError(
                    f"PostgreSQL runs as the unprivileged OS user {identity.name!r} "
                    f"(uid {identity.uid}, gid {identity.gid}), which cannot reach {target}: "
                    f"directory {directory} (owner uid {st.st_uid}, gid {st.st_gid}, mode "
                    f"{stat.S_IMODE(st.st_mode):04o}) is not searchable by that user. Grant "
                    f"search permission (e.g. `chmod o+x {directory}`, or group {identity.gid} "
                    "with g+x) or put the data directory somewhere that user can reach."
                )


def _permits(st: os.stat_result, identity: _Identity, user: int, group: int, other: int) -> bool:
    """Classic owner/group/other permission check (supplementary groups are dropped)."""
    if st.st_uid == identity.uid:
        return bool(st.st_mode & user)
    if st.st_gid == identity.gid:
        return bool(st.st_mode & group)
    return bool(st.st_mode & other)


def _read_pidfile(path: Path) -> _PidFile | None:
    """Parse ``postmaster.pid``; ``None`` if missing or without a valid pid line."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmbeddedPostgresError(f"cannot read {path}: {exc}") from exc
    try:
        pid = int(lines[0].strip())
    except ValueError:
        return None
    if pid <= 0:
        return None

    def line(number: int) -> str | None:
        return lines[number - 1].strip() if len(lines) >= number else None

    port_text = line(4)
    return _PidFile(
        pid=pid,
        data_dir=line(2) or None,
        port=int(port_text) if port_text and port_text.isdigit() else None,
        socket_dir=line(5) or None,
        listen_address=line(6),
        status=line(8),
    )


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        if _have_proc():
            return False
        return _signal_zero(pid)
    except OSError:
        return _signal_zero(pid)
    state = data[data.rfind(b")") + 2 :][:1]
    return state not in (b"Z", b"X", b"x")


def _signal_zero(pid: int) -> bool:
    """Existence check without /proc (cannot tell zombies apart)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _have_proc() -> bool:
    return os.path.exists("/proc/self/stat")


def _server_processes_in(data_dir: Path) -> list[int]:
    """PIDs of live ``postgres`` processes whose working directory is ``data_dir``."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    real = os.path.realpath(data_dir)
    found: list[int] = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != real:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv0 = fh.read().split(b"\0", 1)[0]
        except OSError:
            continue
        # The postmaster shows its executable path, children a "postgres: ..." title.
        if os.path.basename(argv0).startswith(b"postgres") and _pid_alive(int(entry)):
            found.append(int(entry))
    return found


def _wait_for_exit(pids: Iterable[int], timeout: float) -> bool:
    """Wait until all ``pids`` have exited (zombies count as exited); False on timeout."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        if not _wait_for_pid_exit(pid, deadline):
            return False
    return True


def _wait_for_pid_exit(pid: int, deadline: float) -> bool:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):  # no pidfd support: fall back to polling
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not _pid_alive(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(max(0, int((deadline - time.monotonic()) * 1000)))
    finally:
        os.close(pidfd)
    return not _pid_alive(pid)


def _looks_like_postmaster(pid: int) -> bool:
    """True if ``pid``'s command line is a ``postgres`` executable (not a backend title)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv0 = fh.read().split(b"\0", 1)[0]
    except FileNotFoundError:
        return not _have_proc()
    except OSError:
        return True  # no /proc (or hidepid): rely on the data-directory check alone
    return os.path.basename(argv0) == b"postgres"


def _read_lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _socket_dir_usable(directory: Path, port: int) -> bool:
    socket_path = os.fsencode(str(directory / f".s.PGSQL.{port}"))
    text = str(directory)
    return (
        len(socket_path) <= _MAX_SOCKET_PATH_BYTES
        and not _SOCKET_UNSAFE.intersection(text)
        and not any(ch.isspace() for ch in text)
    )


def _is_temp_socket_dir(directory: Path) -> bool:
    normalized = Path(os.path.normpath(directory))
    return normalized.parent == Path(tempfile.gettempdir()) and normalized.name.startswith(
        _TEMP_SOCKET_PREFIX
    )


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


def _remove_socket_files(directory: Path, port: int) -> None:
    for name in (f".s.PGSQL.{port}", f".s.PGSQL.{port}.lock"):
        try:
            (directory / name).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove %s: %s", directory / name, exc)


def _rmdir_quietly(directory: Path) -> None:
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove socket directory %s: %s", directory, exc)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dsn(socket_dir: Path, port: int, database: str) -> str:
    return (
        f"postgresql://{_SUPERUSER}@/{quote(database, safe='')}"
        f"?host={quote(str(socket_dir), safe='/')}&port={port}"
    )


def _read_all(fh: IO[bytes]) -> str:
    fh.seek(0)
    return fh.read().decode(errors="replace")


def _last_lines(text: str, count: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-count:])


def _tail_file(path: Path, count: int = _LOG_TAIL_LINES) -> str:
    """Last ``count`` lines of a (possibly large) text file, or ``""``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    return _last_lines(data.decode(errors="replace"), count)
