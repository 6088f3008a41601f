"""A private PostgreSQL cluster owned by the bridge daemon (``database: embedded``).

:class:`EmbeddedPostgres` initialises a cluster in a data directory on first use, starts it
listening only on a unix socket in a private directory, reuses it across restarts, adopts a
postmaster orphaned by a killed previous owner, and stops it again on ``stop()``.

The PostgreSQL binaries come from the ``pgserver`` wheel; only its ``bin`` directory is used.
PostgreSQL refuses to run as root, so when the bridge runs as root every PostgreSQL command
runs as an unprivileged system user (``bridge-postgres`` unless configured otherwise): see
:mod:`.pg_os_user`. The processes and ``postmaster.pid`` are :mod:`.pg_host`'s, the managed
files and the data directory lock :mod:`.pg_files`'.

Over 400 lines because it is one state machine (initialise, adopt, recover, start, stop) whose
steps share invariants (the lock is held, the socket directory is known) best read in one place.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import tempfile
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

from .pg_files import (
    LOG_FILE,
    DataDirLock,
    append_include_line,
    ensure_include_line,
    rotate_log,
    write_settings,
)
from .pg_host import (
    SOCKET_UNSAFE,
    TEMP_SOCKET_PREFIX,
    EmbeddedPostgresError,
    PidFile,
    fsync_dir,
    is_socket,
    is_temp_socket_dir,
    last_lines,
    looks_like_postmaster,
    pid_alive,
    read_pidfile,
    remove_socket_files,
    rmdir_quietly,
    server_processes_in,
    socket_dir_usable,
    tail_file,
    validate_data_dir_path,
    wait_for_exit,
)
from .pg_os_user import (
    DEFAULT_OS_USER,
    CommandFailed,
    OsIdentity,
    check_access,
    chown_tree_if_needed,
    make_parent_dirs,
    reachable_binaries,
    resolve_identity,
    run_as,
    secure_dir,
)

__all__ = ["DEFAULT_OS_USER", "EmbeddedPostgres", "EmbeddedPostgresError", "postgres_bin_dir"]

log = logging.getLogger(__name__)


_SUPERUSER = "postgres"
_DEFAULT_PORT = 5432
_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60
_COMMAND_TIMEOUT_S = 180.0
_SOCKET_SUBDIR = "run"
_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")


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
        self._mutex = threading.RLock()
        self._lock = DataDirLock(self._data_dir)
        self._identity: OsIdentity | None = None
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
            validate_data_dir_path(self._data_dir)
            self._identity = self._identity or resolve_identity(self._os_user)
            self._bin_dir = self._bin_dir or reachable_binaries(_locate_binaries(), self._identity)
            try:
                make_parent_dirs(self._data_dir, self._identity)
            except OSError as exc:
                raise EmbeddedPostgresError(
                    f"cannot create {self._data_dir.parent}: {exc}"
                ) from exc
            self._lock.acquire()
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
            if not self._lock.held:
                return
            try:
                pidfile = read_pidfile(self._pidfile_path)
                if pidfile is not None and self._owns_postmaster(pidfile):
                    self._pg_ctl_stop()
                else:
                    log.info("embedded PostgreSQL in %s is not running", self._data_dir)
                self._remove_temp_socket_dir()
            finally:
                self._dsn = None
                self._lock.release()

    @property
    def dsn(self) -> str:
        """The asyncpg DSN of the started cluster; raises if :meth:`start` has not succeeded."""
        if self._dsn is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {self._data_dir} is not started")
        return self._dsn

    @property
    def postmaster_pid(self) -> int | None:
        """PID from ``postmaster.pid`` if it is a live postmaster of this data dir, else None."""
        pidfile = read_pidfile(self._pidfile_path)
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
        check_access(self._ident(), [self._data_dir.parent], [self._bin()], _REQUIRED_BINARIES)
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
            pidfile = read_pidfile(self._pidfile_path)
            if pidfile is not None and self._owns_postmaster(pidfile):
                self._pg_ctl_stop()
            self._remove_temp_socket_dir()
        except EmbeddedPostgresError:
            log.exception("could not stop embedded PostgreSQL after a failed start")
        finally:
            self._dsn = None
            self._lock.release()

    def _ensure_cluster(self) -> None:
        """Run initdb unless the data directory already holds a cluster; fix its ownership."""
        if not (self._data_dir / "PG_VERSION").is_file():
            self._initdb()
        chown_tree_if_needed(self._data_dir, self._ident())
        secure_dir(self._data_dir, self._ident())
        ensure_include_line(self._data_dir)
        write_settings(self._data_dir, self._ident())

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
            append_include_line(staging / "postgresql.conf")
            os.rename(staging, data)  # replaces an empty directory atomically
        except OSError as exc:
            log.info("cannot move the new cluster into %s (%s); initialising in place", data, exc)
            shutil.rmtree(staging, ignore_errors=True)
            self._run_initdb(data)
            return
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(data.parent)

    def _run_initdb(self, target: Path) -> None:
        """Run initdb into ``target`` (an existing empty directory or a missing path)."""
        target.mkdir(mode=0o700, exist_ok=True)
        secure_dir(target, self._ident())
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

    def _adoptable_postmaster(self) -> PidFile | None:
        """Return the running postmaster to adopt, cleaning up after a dead one.

        A live postmaster for this data directory that is not ready, listens on TCP, or whose
        socket vanished is stopped so that a clean start follows.
        """
        pidfile_path = self._pidfile_path
        if not pidfile_path.exists():
            return None
        pidfile = read_pidfile(pidfile_path)
        if pidfile is None or not self._owns_postmaster(pidfile):
            self._remove_stale_pidfile(pidfile)
            return None
        socket_ok = (
            pidfile.socket_dir is not None
            and pidfile.port is not None
            and is_socket(Path(pidfile.socket_dir) / f".s.PGSQL.{pidfile.port}")
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

    def _adopt(self, pidfile: PidFile) -> None:
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
        rotate_log(self._log_path)
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
        return self._data_dir / LOG_FILE

    @property
    def _staging_prefix(self) -> str:
        return f".{self._data_dir.name}.initdb-"

    def _server_alive(self) -> bool:
        pidfile = read_pidfile(self._pidfile_path)
        return pidfile is not None and self._owns_postmaster(pidfile)

    def _owns_postmaster(self, pidfile: PidFile) -> bool:
        """True if ``pidfile`` names a live postmaster serving this data directory."""
        if not pid_alive(pidfile.pid) or pidfile.data_dir is None:
            return False
        try:
            same_dir = os.path.samefile(pidfile.data_dir, self._data_dir)
        except OSError:
            return False
        return same_dir and looks_like_postmaster(pidfile.pid)

    def _kill_orphaned_server_processes(self) -> None:
        """SIGKILL server processes of a dead postmaster that still run in the data dir.

        Backends busy in a query notice postmaster death late; while they stay attached to
        the old shared memory a new postmaster refuses to start. Called with the lock held
        and no live postmaster, so every such process is an orphan; crash recovery follows.
        """
        orphans = server_processes_in(self._data_dir)
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
        if not wait_for_exit(orphans, _STOP_TIMEOUT_S):
            raise EmbeddedPostgresError(
                f"orphaned PostgreSQL processes {orphans} of {self._data_dir} did not exit"
            )

    def _remove_stale_pidfile(self, pidfile: PidFile | None) -> None:
        """Delete a ``postmaster.pid`` whose process is gone (or is something else now)."""
        log.warning(
            "removing stale postmaster.pid in %s (pid %s is not a running postmaster); "
            "PostgreSQL will run crash recovery",
            self._data_dir,
            pidfile.pid if pidfile else "unreadable",
        )
        if pidfile is not None and pidfile.socket_dir and pidfile.port is not None:
            socket_dir = Path(pidfile.socket_dir)
            if is_temp_socket_dir(socket_dir):
                remove_socket_files(socket_dir, pidfile.port)
                rmdir_quietly(socket_dir)
        self._pidfile_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ files and directories

    def _prepare_socket_dir(self) -> Path:
        """Return a private (0700, owned by the PostgreSQL user) socket directory."""
        preferred = self._data_dir / _SOCKET_SUBDIR
        if socket_dir_usable(preferred, self._port):
            preferred.mkdir(mode=0o700, exist_ok=True)
            socket_dir = preferred
        else:
            socket_dir = Path(tempfile.mkdtemp(prefix=TEMP_SOCKET_PREFIX))
            log.info("socket path under %s is too long; using %s", self._data_dir, socket_dir)
            if not socket_dir_usable(socket_dir, self._port):
                rmdir_quietly(socket_dir)
                raise EmbeddedPostgresError(
                    f"no usable unix socket directory: {preferred} and {socket_dir} are too long "
                    f"or contain one of {''.join(sorted(SOCKET_UNSAFE))!r}; "
                    "use a shorter data directory path or set TMPDIR"
                )
            check_access(self._ident(), [socket_dir.parent], [], _REQUIRED_BINARIES)
        secure_dir(socket_dir, self._ident())
        remove_socket_files(socket_dir, self._port)  # leftovers of a killed postmaster
        return socket_dir

    def _remove_temp_socket_dir(self) -> None:
        """Remove a socket directory we made under the temp dir (postgres emptied it)."""
        socket_dir = self._socket_dir
        if socket_dir is not None and is_temp_socket_dir(socket_dir):
            remove_socket_files(socket_dir, self._port)
            rmdir_quietly(socket_dir)
        self._socket_dir = None

    def _remove_stale_staging_dirs(self) -> None:
        """Delete half-finished initdb staging dirs of a killed earlier start."""
        prefix = self._staging_prefix
        for entry in os.scandir(self._data_dir.parent):
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                log.warning("removing incomplete cluster %s", entry.path)
                shutil.rmtree(entry.path, ignore_errors=True)

    # ------------------------------------------------------------------ running commands

    def _bin(self) -> Path:
        assert self._bin_dir is not None
        return self._bin_dir

    def _ident(self) -> OsIdentity:
        assert self._identity is not None
        return self._identity

    def _run(self, args: list[str], *, what: str, timeout: float = _COMMAND_TIMEOUT_S) -> str:
        """Run a PostgreSQL command as the PostgreSQL OS user; return its combined output."""
        try:
            return run_as(self._ident(), args, timeout=timeout)
        except CommandFailed as exc:
            raise EmbeddedPostgresError(self._failure(what, args, exc.reason, exc.output)) from exc

    def _failure(self, what: str, args: list[str], reason: str, output: str) -> str:
        parts = [f"{what} {reason}: {shlex.join(args)}"]
        if output.strip():
            parts.append(f"--- output ---\n{last_lines(output)}")
        log_tail = tail_file(self._log_path)
        if log_tail:
            parts.append(f"--- last lines of {self._log_path} ---\n{log_tail}")
        return "\n".join(parts)


def _locate_binaries() -> Path:
    bin_dir = postgres_bin_dir()
    missing = [name for name in _REQUIRED_BINARIES if not (bin_dir / name).is_file()]
    if missing:
        raise EmbeddedPostgresError(
            f"PostgreSQL binaries {missing} not found in {bin_dir}; is pgserver installed?"
        )
    return bin_dir


def _make_dsn(socket_dir: Path, port: int, database: str) -> str:
    return (
        f"postgresql://{_SUPERUSER}@/{quote(database, safe='')}"
        f"?host={quote(str(socket_dir), safe='/')}&port={port}"
    )


def _read_all(fh: IO[bytes]) -> str:
    fh.seek(0)
    return fh.read().decode(errors="replace")
