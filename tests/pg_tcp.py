"""A PostgreSQL server the bridge does not own, reached over TCP: password, TLS, loopback port.

Built from the machine's PostgreSQL binaries when there are any (``BRIDGE_TEST_PG_BIN``, else
the newest ``/usr/lib/postgresql/<version>/bin``; a different major version than the embedded
one is the point), else from the ``pgserver`` wheel's, and set up the way a production server
is: ``listen_addresses`` on 127.0.0.1 with a free port, ``scram-sha-256`` passwords for TCP
logins, TLS with a certificate from a private test CA (``trustme``) when the build has TLS,
and no Unix socket. Tests reach it with ``postgres://bridge:…@127.0.0.1:PORT/…`` and choose
``sslmode`` in the URL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import trustme

from bridge.db.embedded import postgres_bin_dir
from bridge.db.pg_os_user import child_env, reachable_binaries, resolve_identity

USER = "bridge"
_START_TIMEOUT = 60.0


def server_bin_dir() -> Path:
    configured = os.environ.get("BRIDGE_TEST_PG_BIN")
    if configured:
        return Path(configured)
    installed = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return installed[-1] if installed else postgres_bin_dir()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpPostgres:
    """``start()`` initialises and starts the server; ``stop()`` stops it by its own pid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self._identity = resolve_identity(None)
        self._bin = reachable_binaries(server_bin_dir(), self._identity)
        #: Whether the server speaks TLS (known once started).
        self.tls = False

    def url(self, database: str = "postgres", sslmode: str | None = None) -> str:
        """A URL on ``database``; ``sslmode`` by default ``require`` when the server has TLS."""
        if sslmode is None:
            sslmode = "require" if self.tls else "disable"
        return (
            f"postgres://{USER}:{self.password}@127.0.0.1:{self.port}/{database}?sslmode={sslmode}"
        )

    @property
    def dsn(self) -> str:
        """The admin DSN, as the fixtures of the embedded server offer it."""
        return self.url()

    def _run_as_server_user(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        ident = self._identity
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            args,
            env=child_env(ident),
            cwd="/",
            user=ident.uid if ident.switch else None,
            group=ident.gid if ident.switch else None,
            extra_groups=[] if ident.switch else None,
            **kwargs,
        )

    def _chown(self, path: Path) -> None:
        if self._identity.switch:
            os.chown(path, self._identity.uid, self._identity.gid)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        self._chown(pwfile)
        self._chown(self.root)
        log = (self.root / "initdb.log").open("wb")
        initdb = self._run_as_server_user(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=reject",
                "--encoding=UTF8",
                "--locale=C",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if initdb.wait(timeout=120) != 0:
            raise RuntimeError(f"initdb failed: {(self.root / 'initdb.log').read_text()}")
        pwfile.unlink()
        probe = self._run_as_server_user(
            [str(self._bin / "postgres"), "-D", str(self.data_dir), "-C", "ssl_library"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        out, _ = probe.communicate(timeout=60)
        self.tls = bool(out.strip())
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(str(self.data_dir / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(self.data_dir / "server.crt"))
        for name in ("server.key", "server.crt"):
            (self.data_dir / name).chmod(0o600)
            self._chown(self.data_dir / name)
        # Over TCP, TLS or not (the tests choose with sslmode); never without a password.
        (self.data_dir / "pg_hba.conf").write_text(
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 127.0.0.1/32 scram-sha-256\n"
        )
        self._chown(self.data_dir / "pg_hba.conf")
        self.proc = self._run_as_server_user(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                f"ssl={'on' if self.tls else 'off'}",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",  # a throwaway test server; durability is the embedded one's job
            ],
            stdout=(self.root / "postgres.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if b"ready to accept connections" in (self.root / "postgres.log").read_bytes():
                return
            time.sleep(0.05)
        raise RuntimeError("postgres did not become ready in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
