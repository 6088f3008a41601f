"""Child daemons on loopback: free ports, a clean environment, start/ready/stop by PID."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

#: Bounds for waiting on processes. Generous: the machine may be slow and shared.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 0.1

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
# No proxies for anything that talks to loopback from this process either.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something already listens on ``host:port`` (or the port cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child: no proxies, no stray ``BRIDGE_*`` config overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _PROXY_VARS and not k.startswith("BRIDGE_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET (None when nothing answers)."""
    try:
        with _DIRECT.open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def tail(path: Path, lines: int = 120, start: int = 0) -> str:
    """The last ``lines`` lines of a file from byte offset ``start``."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return "(no log)"
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


T = TypeVar("T")


class WaitTimedOut(AssertionError):
    """A bounded wait ended without its condition (an AssertionError, so tests report it so)."""


async def wait_until(
    condition: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str | Callable[[], str],
    interval: float = POLL_INTERVAL,
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``within`` seconds.

    ``what`` (or what it returns, evaluated on failure) says what was awaited.
    """
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise WaitTimedOut(f"timed out after {within:.0f}s waiting for {text}")
        await asyncio.sleep(interval)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie that nobody reaped yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> str:
    """The process's command line, arguments joined by spaces ("" when unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def stop_leftover(pid: int, mark: str, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM (then SIGKILL) a process left running by an earlier run, if ``pid`` is still that
    process: alive, with ``mark`` in its command line. Returns whether there was one to stop."""
    if not process_alive(pid) or mark not in command_line(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(POLL_INTERVAL)
    return True


class ProcessFailed(RuntimeError):
    """A managed process exited before it was ready, or was not ready in time."""


class ManagedProcess:
    """A daemon run as a subprocess: started, checked for readiness, stopped by its own PID.

    Output goes to ``log_path``; ``label`` marks this code's notes in that log. The child runs
    in a session of its own, so a Ctrl-C in the terminal reaches only the parent, which stops
    its children in order.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        log_path: Path,
        ready_url: str,
        label: str = "bridge",
    ) -> None:
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.ready_url = ready_url
        self.label = label
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_offset(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait (bounded) until its readiness URL answers 200."""
        assert not self.running(), f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== {self.label}: start #{self.starts} of {self.name} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProcessFailed(
                    f"{self.name} exited with status {self.proc.returncode} before it was ready; "
                    f"log tail:\n{tail(self.log_path, 60)}"
                )
            if http_status(self.ready_url) == 200:
                return
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{self.name} not ready at {self.ready_url} after {timeout:.0f}s; "
                    f"log tail:\n{tail(self.log_path, 60)}"
                )
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; return the status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.note(f"did not exit {timeout:.0f}s after SIGTERM; sending SIGKILL")
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL: no chance to clean up, like a crash or the OOM killer."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        return self.proc.returncode

    def restart(self, *, kill: bool = False, timeout: float = START_TIMEOUT) -> None:
        """Stop (SIGKILL when ``kill``, else SIGTERM) and start again on the same config/data."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.note(f"restarting ({'SIGKILL' if kill else 'SIGTERM'}) at {time.time():.3f}")
        self.start(timeout)

    async def astart(self) -> None:
        """:meth:`start` off the event loop, so the caller's other tasks keep running."""
        await asyncio.to_thread(self.start)

    async def astop(self) -> int | None:
        """:meth:`stop` off the event loop."""
        return await asyncio.to_thread(self.stop)

    async def arestart(self, *, kill: bool = False) -> None:
        """:meth:`restart` off the event loop."""
        await asyncio.to_thread(self.restart, kill=kill)

    def note(self, text: str) -> None:
        """A line of this code's own in the process's log."""
        with self.log_path.open("ab") as log:
            log.write(f"===== {self.label}: {self.name} {text} =====\n".encode())
