"""``bridge demo``: start PostgreSQL, Synapse and the bridge; seed the scene once; report;
run until Ctrl-C, then stop all three in order."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from ..config import Config, load_config
from ..db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from ..db.schema import ensure_schema
from ..local.processes import (
    ProcessFailed,
    WaitTimedOut,
    free_port,
    port_in_use,
    stop_leftover,
)
from ..local.synapse import SynapseProcess, synapse_installed
from ..serving import running_bridge
from .layout import DEFAULT_DIR, DemoBusy, DemoLayout, DemoLock
from .prepare import write_bridge_config, write_homeserver_config
from .progress import Hint, Progress, StepFailed, write_access_hint
from .report import TOKEN_TTL, build_report, render_text
from .rest import DemoRest
from .seed import Scene, Seeder

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
INSTALL_HINT = "install the demo's extra: pip install -e '.[demo]' (it brings matrix-synapse)"


#: Ports a new demo takes when they are free (the usual ones), so that its URLs stay the same
#: across ``--reset``; otherwise it takes free ones.
PREFERRED_HOMESERVER_PORT = 8008
PREFERRED_BRIDGE_PORT = 29400


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def _choose_port(asked: int | None, preferred: int) -> int:
    """The port asked for (0: any free one), else ``preferred`` when free, else a free one."""
    if asked is not None:
        return asked or free_port()
    return preferred if not port_in_use(preferred) else free_port()


class PortInUse(OSError):
    def __init__(self, what: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{what}'s port {port} is already in use")
        self.port = port


def _port_hint(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            "another program (perhaps another demo) listens on that port: stop it, or run "
            "`bridge demo --reset` to start over on new ports"
        )
    return None


def _hints(*hints: Hint) -> Hint:
    def first(exc: BaseException) -> str | None:
        return next((h for h in (hint(exc) for hint in hints) if h), None)

    return first


def _postgres_hint(exc: BaseException) -> str | None:
    if "in use by another" in str(exc):
        return "another bridge process uses this demo's database: stop it first"
    return "PostgreSQL did not start: its log says why; `bridge demo --reset` starts over"


def _synapse_hint(exc: BaseException) -> str | None:
    if isinstance(exc, ProcessFailed):
        return (
            "Synapse failed to start: the end of its log says why; `bridge demo --reset` "
            "starts over with a fresh homeserver"
        )
    return None


def _seed_hint(exc: BaseException) -> str | None:
    if isinstance(exc, WaitTimedOut):
        return (
            "the bridge or the homeserver did not do its part in time: read the log; "
            "`bridge demo --reset` starts over"
        )
    return "read the log; `bridge demo --reset` starts over"


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class Demo:
    """One run of the demo: start-up, the report, the wait, the shutdown."""

    def __init__(self, layout: DemoLayout, args: argparse.Namespace, progress: Progress) -> None:
        self.layout = layout
        self.args = args
        self.progress = progress
        self.stack = contextlib.AsyncExitStack()
        self.lock = DemoLock(layout)

    async def start(self) -> dict[str, Any]:
        """Everything up and seeded; returns the report."""
        layout, progress = self.layout, self.progress
        if not synapse_installed():
            raise StepFailed(
                "checking for Synapse", "matrix-synapse is not installed", None, INSTALL_HINT
            )
        async with progress.step(
            f"data directory {layout.root}", hint=write_access_hint(layout.root)
        ):
            state = self._open_directory()
        fresh = "ports" not in state
        if fresh:
            async with progress.step(
                "configuration written (bridge, REST signing key, homeserver, registration)",
                hint=write_access_hint(layout.root),
            ):
                state = await asyncio.to_thread(self._write_configs)
        config = load_config(layout.config, environ={})
        _log_to_file(layout.bridge_log)
        ports = state["ports"]
        async with progress.step(
            "PostgreSQL running", log=layout.postgres_log, hint=_postgres_hint
        ):
            postgres = EmbeddedPostgres(config.appservice.embedded_data_dir)
            dsn = await asyncio.to_thread(postgres.start)
            self.stack.push_async_callback(self._stop, "PostgreSQL", postgres.stop)
        async with progress.step("database schema up to date", log=layout.bridge_log):
            await ensure_schema(dsn, migrate=True)
        synapse = SynapseProcess(
            layout.synapse, port=ports["homeserver"], log_path=layout.synapse_log, label="demo"
        )
        await asyncio.to_thread(self._stop_leftover_synapse, state)
        async with progress.step(
            f"Synapse running at {synapse.url}",
            log=layout.synapse_log,
            hint=_hints(_port_hint, _synapse_hint),
        ):
            if port_in_use(synapse.port):
                raise PortInUse("Synapse", synapse.port)
            self.stack.push_async_callback(self._stop, "Synapse", synapse.stop)
            await synapse.astart()
            state["synapse_pid"] = synapse.pid
            layout.write_state(state)
        async with progress.step(
            f"bridge listening at {config.appservice.address}",
            log=layout.bridge_log,
            hint=_port_hint,
        ):
            if port_in_use(config.appservice.port):
                raise PortInUse("the bridge", config.appservice.port)
            await self.stack.enter_async_context(
                self._stopped_in_a_step("the bridge", running_bridge(config, dsn))
            )
        session = await self.stack.enter_async_context(aiohttp.ClientSession(trust_env=False))
        rest = DemoRest(config, session)
        if "scene" in state:
            scene = Scene.from_json(state["scene"])
            progress.say(f"[ok] scene of the first run reused ({scene.matrix_user})")
        else:
            scene = await self._seed(config, rest, synapse)
            state["scene"] = scene.to_json()
            layout.write_state(state)
        tokens = {
            u["id"]: rest.token(uuid.UUID(u["id"]), u["name"], ttl=TOKEN_TTL)
            for u in scene.network_users
        }
        return build_report(
            config,
            scene,
            layout,
            tokens,
            pids={"synapse": synapse.pid, "postgres": postgres.postmaster_pid},
            ready_seconds=progress.elapsed(),
        )

    async def stop(self) -> None:
        try:
            await self.stack.aclose()
        finally:
            self.lock.release()

    # ------------------------------------------------------------------------- parts

    def _open_directory(self) -> dict[str, Any]:
        layout = self.layout
        layout.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
        except DemoBusy as exc:
            raise StepFailed(
                f"data directory {layout.root}",
                exc,
                None,
                "stop that demo first (Ctrl-C in its terminal), or use another --dir",
            ) from None
        state = layout.read_state()
        if (
            self.args.reset
            or (state is not None and "scene" not in state)
            or (state is None and layout.root.exists())
        ):
            if layout.root.exists():
                if not self.args.reset:
                    self.progress.say("An earlier demo set-up did not finish: starting over.")
                self._stop_leftovers(state or {})
                shutil.rmtree(layout.root)
            state = None
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.root.chmod(0o711)  # as root, PostgreSQL runs as a user that must get through
        layout.logs.mkdir(exist_ok=True)
        return state or {}

    def _stop_leftover_synapse(self, state: dict[str, Any]) -> None:
        """Stop the Synapse a crashed earlier run left running (it would hold its port)."""
        pid = state.get("synapse_pid")
        if isinstance(pid, int) and stop_leftover(pid, str(self.layout.synapse.config)):
            self.progress.say(f"[ok] stopped the Synapse an earlier demo left running (pid {pid})")

    def _stop_leftovers(self, state: dict[str, Any]) -> None:
        """Before the directory goes: its Synapse and PostgreSQL, if a crash left them running."""
        self._stop_leftover_synapse(state)
        if (self.layout.postgres_dir / "postmaster.pid").exists():
            leftover = EmbeddedPostgres(self.layout.postgres_dir)
            with contextlib.suppress(EmbeddedPostgresError):
                leftover.start()  # adopts the running postmaster, so that it can stop it
            leftover.stop()

    def _write_configs(self) -> dict[str, Any]:
        ports = {
            "bridge": _choose_port(self.args.port, PREFERRED_BRIDGE_PORT),
            "homeserver": _choose_port(self.args.homeserver_port, PREFERRED_HOMESERVER_PORT),
        }
        write_bridge_config(
            self.layout, bridge_port=ports["bridge"], homeserver_port=ports["homeserver"]
        )
        write_homeserver_config(self.layout, homeserver_port=ports["homeserver"])
        state: dict[str, Any] = {"ports": ports}
        self.layout.write_state(state)
        return state

    async def _seed(self, config: Config, rest: DemoRest, synapse: SynapseProcess) -> Scene:
        seeder = Seeder(
            config, rest, homeserver_url=synapse.url, shared_secret=synapse.shared_secret()
        )

        async def run_step(title: str, work: Callable[[], Awaitable[None]]) -> None:
            async with self.progress.step(title, log=self.layout.bridge_log, hint=_seed_hint):
                await work()

        return await seeder.run(run_step)

    async def _stop(self, what: str, stop: Callable[[], object]) -> None:
        async with self.progress.step(f"stopped {what}"):
            await asyncio.to_thread(stop)

    @contextlib.asynccontextmanager
    async def _stopped_in_a_step(
        self, what: str, running: contextlib.AbstractAsyncContextManager[T]
    ) -> AsyncIterator[T]:
        """``running``'s value; its exit timed and reported as the step ``stopped <what>``."""
        async with contextlib.AsyncExitStack() as inner:
            value = await inner.enter_async_context(running)
            try:
                yield value
            finally:
                async with self.progress.step(f"stopped {what}"):
                    await inner.aclose()


async def run_demo(layout: DemoLayout, args: argparse.Namespace, progress: Progress) -> int:
    """Start, report, wait for Ctrl-C (or SIGTERM), stop. A signal during start-up stops too."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    demo = Demo(layout, args, progress)
    starting = asyncio.ensure_future(demo.start())

    def on_signal() -> None:
        if not starting.done():
            starting.cancel()
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        try:
            report = await starting
        except asyncio.CancelledError:
            progress.say("Interrupted during start-up; stopping.")
            return EXIT_INTERRUPTED
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            print(render_text(report), flush=True)
        await stopping.wait()
        progress.say("Stopping the demo.")
        return 0
    finally:
        await demo.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def cmd_demo(args: argparse.Namespace) -> int:
    layout = DemoLayout(Path(args.dir).absolute())
    progress = Progress(sys.stderr if args.json else sys.stdout)
    try:
        return asyncio.run(run_demo(layout, args, progress))
    except StepFailed as exc:
        print(exc.describe(), file=sys.stderr)
        return EXIT_FAILED


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``demo`` on the CLI's sub-command parsers."""
    parser = subparsers.add_parser(
        "demo",
        help="run the bridge with a local homeserver and a seeded scene, to try it out",
        description=(
            "Runs PostgreSQL, a local Synapse and the bridge in a demo data directory, seeds "
            "users, conversations and a notification on the first run, and prints how to log "
            "in and what to try. Ctrl-C stops everything; running it again resumes."
        ),
    )
    parser.add_argument(
        "--dir",
        default=str(DEFAULT_DIR),
        help=f"the demo's data directory (default: {DEFAULT_DIR})",
    )
    parser.add_argument("--reset", action="store_true", help="delete the demo's data first")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as one JSON object on stdout (progress goes to stderr)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"the bridge's port in a new demo (default: {PREFERRED_BRIDGE_PORT} if free; "
        "0: any free port)",
    )
    parser.add_argument(
        "--homeserver-port",
        type=_port,
        default=None,
        help=f"Synapse's port in a new demo (default: {PREFERRED_HOMESERVER_PORT} if free; "
        "0: any free port)",
    )
    parser.set_defaults(func=cmd_demo)
    return parser
