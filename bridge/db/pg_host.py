"""The host side of the embedded PostgreSQL: its processes, ``postmaster.pid``, its lock, log
and unix socket files. (The OS user it runs as when the bridge is root: :mod:`.pg_os_user`.)
"""

from __future__ import annotations

import logging
import os
import select
import stat
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Characters that pg_ctl cannot pass through its `/bin/sh -c "exec ... -D \"<dir>\""` command line.
SHELL_UNSAFE = frozenset('"\\$`\n\r\0')
PSQL_CONNECT_TIMEOUT_S = 10
LOG_TAIL_LINES = 40
MAX_SOCKET_PATH_BYTES = 100
TEMP_SOCKET_PREFIX = "bridge-pg-"
# Characters that break libpq's comma-separated host list or the unix_socket_directories list.
SOCKET_UNSAFE = frozenset(",\"'\\")


class EmbeddedPostgresError(RuntimeError):
    """Raised when the embedded PostgreSQL cluster cannot be set up, started or stopped."""


@dataclass(frozen=True)
class PidFile:
    """The parts of ``postmaster.pid`` that matter here (see PostgreSQL's pidfile.h)."""

    pid: int
    data_dir: str | None
    port: int | None
    socket_dir: str | None
    listen_address: str | None
    status: str | None


def validate_data_dir_path(data_dir: Path) -> None:
    bad = sorted(SHELL_UNSAFE.intersection(str(data_dir)))
    if bad:
        raise EmbeddedPostgresError(
            f"data directory path {str(data_dir)!r} contains characters pg_ctl cannot handle: "
            f"{bad!r}"
        )
    if data_dir.parent == data_dir:
        raise EmbeddedPostgresError("the data directory cannot be the filesystem root")


def read_pidfile(path: Path) -> PidFile | None:
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
    return PidFile(
        pid=pid,
        data_dir=line(2) or None,
        port=int(port_text) if port_text and port_text.isdigit() else None,
        socket_dir=line(5) or None,
        listen_address=line(6),
        status=line(8),
    )


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        if have_proc():
            return False
        return signal_zero(pid)
    except OSError:
        return signal_zero(pid)
    state = data[data.rfind(b")") + 2 :][:1]
    return state not in (b"Z", b"X", b"x")


def signal_zero(pid: int) -> bool:
    """Existence check without /proc (cannot tell zombies apart)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def have_proc() -> bool:
    return os.path.exists("/proc/self/stat")


def server_processes_in(data_dir: Path) -> list[int]:
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
        if os.path.basename(argv0).startswith(b"postgres") and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def wait_for_exit(pids: Iterable[int], timeout: float) -> bool:
    """Wait until all ``pids`` have exited (zombies count as exited); False on timeout."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        if not wait_for_pid_exit(pid, deadline):
            return False
    return True


def wait_for_pid_exit(pid: int, deadline: float) -> bool:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):  # no pidfd support: fall back to polling
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not pid_alive(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(max(0, int((deadline - time.monotonic()) * 1000)))
    finally:
        os.close(pidfd)
    return not pid_alive(pid)


def looks_like_postmaster(pid: int) -> bool:
    """True if ``pid``'s command line is a ``postgres`` executable (not a backend title)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv0 = fh.read().split(b"\0", 1)[0]
    except FileNotFoundError:
        return not have_proc()
    except OSError:
        return True  # no /proc (or hidepid): rely on the data-directory check alone
    return os.path.basename(argv0) == b"postgres"


def last_lines(text: str, count: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-count:])


def socket_dir_usable(directory: Path, port: int) -> bool:
    socket_path = os.fsencode(str(directory / f".s.PGSQL.{port}"))
    text = str(directory)
    return (
        len(socket_path) <= MAX_SOCKET_PATH_BYTES
        and not SOCKET_UNSAFE.intersection(text)
        and not any(ch.isspace() for ch in text)
    )


def is_temp_socket_dir(directory: Path) -> bool:
    normalized = Path(os.path.normpath(directory))
    return normalized.parent == Path(tempfile.gettempdir()) and normalized.name.startswith(
        TEMP_SOCKET_PREFIX
    )


def is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


def remove_socket_files(directory: Path, port: int) -> None:
    for name in (f".s.PGSQL.{port}", f".s.PGSQL.{port}.lock"):
        try:
            (directory / name).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove %s: %s", directory / name, exc)


def rmdir_quietly(directory: Path) -> None:
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove socket directory %s: %s", directory, exc)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tail_file(path: Path, count: int = LOG_TAIL_LINES) -> str:
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
    return last_lines(data.decode(errors="replace"), count)
