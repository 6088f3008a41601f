"""``bridge run --processes N``: N bridge processes of one role, started and kept running.

The supervisor owns what must exist once per machine: the embedded PostgreSQL (if configured)
and the schema migration. Each child is an ordinary ``bridge run --role R --no-migrate`` on the
same config, with the database URL handed down (``BRIDGE_APPSERVICE__DATABASE``) and
``reuse_port`` on, so every child listens on the same port and the kernel spreads the
homeserver's connections across them. A child that exits unexpectedly is started again (after
a back-off while it keeps failing); SIGTERM or SIGINT stops every child, then the supervisor.

Metrics are per process, and a listening port is not shared: with ``metrics.enabled``, child
``i`` (0 to N-1, kept across restarts) serves them on ``metrics.listen``'s port + ``i``, so
Prometheus scrapes each child as a target of its own (and sums across them, as it does across
machines). One port per child keeps every process's counters its own and readable after the
others died; prometheus-client's multiprocess mode would aggregate them on one port but only
within this supervisor (not across machines or separately started units), with files to clean
after each child and no custom collectors.

Children are separate interpreters (not ``fork()`` of a running event loop), so each has its
own GIL, pool and event loop, exactly as if an init system had started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from .config import ConfigError, MetricsConfig
from .listening import host_port

log = logging.getLogger(__name__)

_STOP_TIMEOUT = 30.0
_RESTART_DELAY = 1.0
_MAX_RESTART_DELAY = 30.0
_HEALTHY_AFTER = 60.0  # a child that ran this long is restarted at once when it exits


class Supervisor:
    def __init__(
        self,
        config_path: Path,
        role: str,
        processes: int,
        dsn: str,
        *,
        hand_down_dsn: bool,
        metrics: MetricsConfig | None = None,
    ) -> None:
        """``metrics``: the metrics listener the children number their own from (None or
        disabled: no metrics)."""
        self._metrics = metrics if metrics is not None and metrics.enabled else None
        if self._metrics is not None and self._metrics.port + processes - 1 > 65535:
            raise ConfigError(
                "metrics.listen",
                f"{processes} processes need ports {self._metrics.port} to "
                f"{self._metrics.port + processes - 1}; choose a lower port",
            )
        self._config_path = config_path
        self._role = role
        self._processes = processes
        self._dsn = dsn
        self._hand_down_dsn = hand_down_dsn
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()

    def metrics_listen(self, slot: int) -> str | None:
        """Where child ``slot`` serves its metrics (None: metrics are off)."""
        if self._metrics is None:
            return None
        return host_port(self._metrics.host, self._metrics.port + slot)

    def command(self, slot: int) -> list[str]:
        listen = self.metrics_listen(slot)
        return [
            sys.executable,
            "-m",
            "bridge",
            "run",
            "-c",
            str(self._config_path),
            "--role",
            self._role,
            "--no-migrate",
            *(["--metrics-listen", listen] if listen is not None else []),
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["BRIDGE_APPSERVICE__REUSE_PORT"] = "true"
        if self._hand_down_dsn:  # the embedded server this supervisor runs
            env["BRIDGE_APPSERVICE__DATABASE"] = self._dsn
        return env

    async def run(self) -> int:
        """Run the children until SIGTERM/SIGINT; return the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        keepers = [
            asyncio.create_task(self._keep(slot), name=f"child-{slot}")
            for slot in range(self._processes)
        ]
        log.info("Supervising %d %s process(es)", self._processes, self._role)
        await self._stopping.wait()
        log.info("Stopping %d child process(es)", len(self._children))
        for child in list(self._children.values()):
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        await asyncio.gather(*keepers)
        return 0

    async def _keep(self, slot: int) -> None:
        delay = _RESTART_DELAY
        while not self._stopping.is_set():
            child = await asyncio.create_subprocess_exec(
                *self.command(slot), env=self.environment(), stdin=asyncio.subprocess.DEVNULL
            )
            self._children[slot] = child
            listen = self.metrics_listen(slot)
            log.info(
                "Started %s process %d (pid %d)%s",
                self._role,
                slot,
                child.pid,
                f", metrics on {listen}" if listen else "",
            )
            started = asyncio.get_running_loop().time()
            code = await self._wait(child)
            del self._children[slot]
            if self._stopping.is_set():
                return
            lived = asyncio.get_running_loop().time() - started
            delay = _RESTART_DELAY if lived >= _HEALTHY_AFTER else delay
            log.error(
                "%s process %d (pid %d) exited with %s; starting it again in %.0f s",
                self._role,
                slot,
                child.pid,
                code,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, _MAX_RESTART_DELAY)

    async def _wait(self, child: asyncio.subprocess.Process) -> int:
        """Wait for the child; once stopping, give it ``_STOP_TIMEOUT`` then kill it."""
        waiting = asyncio.create_task(child.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            try:
                return await asyncio.wait_for(asyncio.shield(waiting), _STOP_TIMEOUT)
            except TimeoutError:
                log.warning("pid %d did not stop in %.0f s; killing it", child.pid, _STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
        return await waiting
