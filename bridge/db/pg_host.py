"""The host side of the embedded PostgreSQL: the OS user it runs as, the permissions it needs,
and its processes and ``postmaster.pid``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import select
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_OS_USER = "bridge-postgres"
"""OS user that runs PostgreSQL when the bridge runs as root and no ``os_user`` is given."""

# Characters that pg_ctl cannot pass through its `/bin/sh -c "exec ... -D \"<dir>\""` command line.
SHELL_UNSAFE = frozenset('"\\$`\n\r\0')
PSQL_CONNECT_TIMEOUT_S = 10
LOG_TAIL_LINES = 40
_OS_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}")


class EmbeddedPostgresError(RuntimeError):
    """Raised when the embedded PostgreSQL cluster cannot be set up, started or stopped."""


@dataclass(frozen=True)
class OsIdentity:
    """OS identity that PostgreSQL commands run as."""

    uid: int
    gid: int
    name: str
    home: str
    switch: bool  # True when we run as root and must drop privileges for every command


@dataclass(frozen=True)
class PidFile:
    """The parts of ``postmaster.pid`` that matter here (see PostgreSQL's pidfile.h)."""

    pid: int
    data_dir: str | None
    port: int | None
    socket_dir: str | None
    listen_address: str | None
    status: str | None


def resolve_identity(os_user: str | None) -> OsIdentity:
    """Decide which OS user runs PostgreSQL (creating it when running as root)."""
    if os.geteuid() != 0:
        entry = getpwuid(os.geteuid())
        return OsIdentity(os.geteuid(), os.getegid(), entry[0], entry[1], switch=False)
    name = os_user or DEFAULT_OS_USER
    if not _OS_USER_RE.fullmatch(name):
        raise EmbeddedPostgresError(f"invalid OS user name for PostgreSQL: {name!r}")
    pw = ensure_os_user(name)
    if pw.pw_uid == 0:
        raise EmbeddedPostgresError(
            f"OS user {name!r} has uid 0; PostgreSQL must run as an unprivileged user"
        )
    return OsIdentity(pw.pw_uid, pw.pw_gid, name, pw.pw_dir, switch=True)


def getpwuid(uid: int) -> tuple[str, str]:
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return str(uid), os.environ.get("HOME", "/")
    return pw.pw_name, pw.pw_dir


def ensure_os_user(name: str) -> pwd.struct_passwd:
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
            f"{proc.returncode}: {last_lines(proc.stdout + proc.stderr)}"
        ) from None


def child_env(identity: OsIdentity) -> dict[str, str]:
    """Environment for PostgreSQL commands: no inherited PG* variables, C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["PGCONNECT_TIMEOUT"] = str(PSQL_CONNECT_TIMEOUT_S)
    if identity.switch:
        env.update(HOME=identity.home, USER=identity.name, LOGNAME=identity.name)
    return env


def validate_data_dir_path(data_dir: Path) -> None:
    bad = sorted(SHELL_UNSAFE.intersection(str(data_dir)))
    if bad:
        raise EmbeddedPostgresError(
            f"data directory path {str(data_dir)!r} contains characters pg_ctl cannot handle: "
            f"{bad!r}"
        )
    if data_dir.parent == data_dir:
        raise EmbeddedPostgresError("the data directory cannot be the filesystem root")


def make_parent_dirs(data_dir: Path, identity: OsIdentity) -> None:
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


def check_reachable(target: Path, identity: OsIdentity) -> None:
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
            if not permits(st, identity, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                raise EmbeddedPostgresError(
                    f"PostgreSQL runs as the unprivileged OS user {identity.name!r} "
                    f"(uid {identity.uid}, gid {identity.gid}), which cannot reach {target}: "
                    f"directory {directory} (owner uid {st.st_uid}, gid {st.st_gid}, mode "
                    f"{stat.S_IMODE(st.st_mode):04o}) is not searchable by that user. Grant "
                    f"search permission (e.g. `chmod o+x {directory}`, or group {identity.gid} "
                    "with g+x) or put the data directory somewhere that user can reach."
                )


def permits(st: os.stat_result, identity: OsIdentity, user: int, group: int, other: int) -> bool:
    """Classic owner/group/other permission check (supplementary groups are dropped)."""
    if st.st_uid == identity.uid:
        return bool(st.st_mode & user)
    if st.st_gid == identity.gid:
        return bool(st.st_mode & group)
    return bool(st.st_mode & other)


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


#: Where a root-run bridge keeps a copy of the PostgreSQL installation its OS user can reach.
BINARY_CACHE = Path("/var/cache/bridge-postgres")


def reachable_binaries(bin_dir: Path, identity: OsIdentity) -> Path:
    """The PostgreSQL ``bin`` directory the OS user can run.

    That is ``bin_dir`` itself, unless the bridge runs as root and the installation sits where
    PostgreSQL's unprivileged user cannot reach it (a virtualenv under a private directory,
    e.g. a checkout in a 0700 temporary directory). Then the whole installation (bin, lib,
    share: it is relocatable) is copied once into a root-owned cache and run from there,
    together with the wheel's bundled libraries (``<package>.libs``, found through the
    binaries' relative rpath), laid out as in site-packages.
    """
    if not identity.switch:
        return bin_dir
    try:
        check_reachable(bin_dir, identity)
        return bin_dir
    except EmbeddedPostgresError:
        pass
    install = bin_dir.resolve().parent
    postgres = (bin_dir / "postgres").stat()
    key = hashlib.sha256(
        f"{install}:{postgres.st_size}:{postgres.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    package = install.parent  # site-packages/<package>/<install>
    libs = package.parent / f"{package.name}.libs"
    target = BINARY_CACHE / key
    copied_bin = target / package.name / install.name / "bin"
    if not (target / ".complete").is_file():
        BINARY_CACHE.mkdir(mode=0o755, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=BINARY_CACHE))
        try:
            copy = staging / "install"
            shutil.copytree(install, copy / package.name / install.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, copy / libs.name, symlinks=True)
            for directory in (copy, copy / package.name):
                directory.chmod(0o755)
            (copy / ".complete").touch()
            try:
                copy.rename(target)
            except OSError:
                if not (target / ".complete").is_file():  # not a concurrent copy: a real error
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("copied the PostgreSQL installation to %s for OS user %s", target, identity.name)
    check_reachable(copied_bin, identity)
    return copied_bin
