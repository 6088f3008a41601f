"""The files of the embedded cluster that the bridge manages: the settings file and the line
in ``postgresql.conf`` that includes it, the server log's rotation, and the lock that makes one
bridge process the owner of a data directory.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .pg_host import EmbeddedPostgresError
from .pg_os_user import OsIdentity

LOG_FILE = "postgres.log"
_LOG_ROTATE_BYTES = 16 * 1024 * 1024
_SETTINGS_FILE = "bridge.conf"
_INCLUDE_LINE = f"include_if_exists = '{_SETTINGS_FILE}'"

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


def ensure_include_line(data_dir: Path) -> None:
    """Make ``postgresql.conf`` include the bridge-managed settings file."""
    conf = data_dir / "postgresql.conf"
    fd = os.open(conf, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        present = _INCLUDE_LINE.encode() in fh.read()
    if not present:
        append_include_line(conf)


def append_include_line(conf: Path) -> None:
    text = f"\n# Settings managed by the bridge, rewritten at every start.\n{_INCLUDE_LINE}\n"
    fd = os.open(conf, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text.encode())


def write_settings(data_dir: Path, identity: OsIdentity) -> None:
    """(Re)write the bridge-managed settings file; ALTER SYSTEM still overrides it."""
    lines = [
        "# Managed by the bridge (bridge.db.embedded); rewritten at every start.",
        "# Override with ALTER SYSTEM (postgresql.auto.conf) if you must.",
        *(f"{name} = {value}" for name, value in _SERVER_SETTINGS),
    ]
    target = data_dir / _SETTINGS_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if identity.switch:
            os.fchown(fd, identity.uid, identity.gid)
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def rotate_log(log_path: Path) -> None:
    """Keep the server log bounded: move a large one aside before starting."""
    try:
        size = log_path.stat().st_size
    except FileNotFoundError:
        return
    if size > _LOG_ROTATE_BYTES:
        os.replace(log_path, log_path.with_name(log_path.name + ".1"))


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>.lock``, holding the owner's pid.

    A process killed with SIGKILL releases it implicitly.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._path = data_dir.with_name(data_dir.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (no-op if this object holds it); raise naming the holder's pid."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise EmbeddedPostgresError(f"cannot open lock file {self._path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_lock_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL data directory {self._data_dir} is in use by another "
                    f"bridge process (pid {holder}); lock file {self._path}"
                ) from None
            raise EmbeddedPostgresError(f"cannot lock {self._path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the only descriptor releases the flock


def _read_lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
