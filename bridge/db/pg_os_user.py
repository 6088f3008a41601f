"""Running the embedded PostgreSQL as another OS user, for a bridge started as root.

PostgreSQL refuses to run as root. A root-run bridge (a container, CI) therefore runs every
PostgreSQL command as an unprivileged system user (``bridge-postgres`` unless configured
otherwise, created if missing), gives it the data and socket directories, checks that it can
reach them (naming the directory in the way if not), and copies the PostgreSQL installation
to a root-owned cache when the user cannot reach the virtualenv's. Run as anyone else, the
bridge runs PostgreSQL as itself and all of this is a no-op (``OsIdentity.switch`` is False).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .pg_host import PSQL_CONNECT_TIMEOUT_S, EmbeddedPostgresError, last_lines

log = logging.getLogger(__name__)

DEFAULT_OS_USER = "bridge-postgres"
"""OS user that runs PostgreSQL when the bridge runs as root and no ``os_user`` is given."""
_OS_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


@dataclass(frozen=True)
class OsIdentity:
    """OS identity that PostgreSQL commands run as."""

    uid: int
    gid: int
    name: str
    home: str
    switch: bool  # True when we run as root and must drop privileges for every command


def resolve_identity(os_user: str | None) -> OsIdentity:
    """Decide which OS user runs PostgreSQL (creating it when running as root)."""
    if os.geteuid() != 0:
        entry = getpwuid(os.geteuid())
        return OsIdentity(os.geteuid(), os.getegid(), entry[0], entry[1], switch=False)
    name = os_user or DEFAULT_OS_USER
    if not _OS_USER_RE.match(name):
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


def secure_dir(path: Path, identity: OsIdentity) -> None:
    """Make ``path`` 0700 and owned by the PostgreSQL user, never following a symlink.

    As root we work inside directories the PostgreSQL user controls, so everything is
    done through a descriptor opened with O_NOFOLLOW.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise EmbeddedPostgresError(f"{path} is not a usable directory: {exc}") from exc
    try:
        if identity.switch:
            os.fchown(fd, identity.uid, identity.gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def chown_tree_if_needed(root: Path, identity: OsIdentity) -> None:
    """Give an existing cluster to the PostgreSQL user if another user owns it."""
    if not identity.switch or root.stat().st_uid == identity.uid:
        return
    log.warning("changing ownership of %s to %s", root, identity.name)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, identity.uid, identity.gid, follow_symlinks=False)
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), identity.uid, identity.gid, follow_symlinks=False)


def check_access(
    identity: OsIdentity, dirs: Iterable[Path], searchable: Iterable[Path], binaries: Iterable[str]
) -> None:
    """Raise unless the PostgreSQL user can reach ``dirs`` and search ``searchable``."""
    if not identity.switch:
        return
    for target in dirs:
        check_reachable(target, identity)
    for target in searchable:
        check_reachable(target, identity)
        for name in binaries:
            binary = target / name
            if not permits(binary.stat(), identity, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                raise EmbeddedPostgresError(
                    f"{binary} is not executable by PostgreSQL's OS user {identity.name!r}"
                )


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


class CommandFailed(Exception):
    """A command run by :func:`run_as` failed: why, and what it printed."""

    def __init__(self, reason: str, output: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output


def run_as(identity: OsIdentity, args: list[str], *, timeout: float) -> str:
    """Run a command as ``identity`` (dropping root's groups); return its combined output.

    Output goes to a temporary *file*: a postmaster started by pg_ctl must never inherit
    a pipe we are reading, or we would wait for it forever.
    """
    log.debug("running %s", shlex.join(args))
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env(identity),
                cwd="/",
                timeout=timeout,
                check=False,
                user=identity.uid if identity.switch else None,
                group=identity.gid if identity.switch else None,
                extra_groups=[] if identity.switch else None,
            )
        except subprocess.TimeoutExpired:
            raise CommandFailed(f"timed out after {timeout:g}s", _read_all(out)) from None
        except OSError as exc:
            raise CommandFailed(f"could not be run: {exc}", "") from exc
        output = _read_all(out)
    if proc.returncode != 0:
        raise CommandFailed(f"failed with exit status {proc.returncode}", output)
    return output


def _read_all(fh: IO[bytes]) -> str:
    fh.seek(0)
    return fh.read().decode(errors="replace")
