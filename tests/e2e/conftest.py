"""End-to-end test bed: a real Synapse and the bridge as a real subprocess, both on loopback.

Session-scoped, so the whole suite pays for one Synapse and one bridge:

* ``e2e_root``: a private temporary directory (kept when a test failed, removed otherwise);
* ``bridge_proc``: the bridge, ``python -m bridge run -c config.yaml`` with ``database: embedded``
  (its own PostgreSQL in its data directory), after ``bridge generate-registration`` wrote the
  tokens into its config and the registration file for Synapse;
* ``synapse``: the installed matrix-synapse with SQLite, loading that registration file.

Both run as subprocesses with their output in log files; the tail of both logs is attached to
the report of a failing test. ``restart()`` (SIGKILL or SIGTERM, then start again on the same
config and data) lets a test crash either of them mid-stream.

Per test: ``alice`` (a logged-in mautrix ``ClientAPI``), ``appservice`` (mautrix ``IntentAPI``
of the bridge bot, acting with the as_token), ``inbox`` (read access to the bridge's DB),
``network`` (network users, connections and conversations, set up in the bridge's DB),
``new_matrix_user`` (registers a fresh Matrix user, for a scenario that needs one with no history)
and ``rest`` (the bridge's REST API over HTTP, with HS256 tokens minted from the config's secret).
``bridge`` and ``homeserver`` are the session's processes, started again first if an earlier
test left one stopped.

Nothing here goes through a proxy: children get an environment without ``*_proxy`` variables
(and without ``BRIDGE_*`` config overrides), and the in-process clients (aiohttp, urllib with
an empty ProxyHandler) ignore the environment's proxies.

``E2E_KEEP_DIR=1`` keeps the working directory (it is always kept when a test failed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client import ClientAPI
from mautrix.client.state_store import MemoryStateStore
from mautrix.util.logging import TraceLogger

from bridge.local.synapse import SynapseFiles, homeserver_config, write_config
from tests.e2e.bed import (
    ALICE,
    ALICE_PASSWORD,
    APPSERVICE_ID,
    BOT_LOCALPART,
    BOT_MXID,
    LOG_TAIL_LINES,
    PROCESSES,
    REPO_ROOT,
    SERVER_NAME,
    BridgeProcess,
    Inbox,
    Network,
    RestApi,
    SynapseProcess,
    child_env,
    free_port,
    logged_in,
    register_user,
    tail,
)

_FAILED: list[str] = []


class MemoryASStateStore(MemoryStateStore, ASStateStore):
    """mautrix's in-memory state store with the appservice part (registered users)."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the tail of both daemons' logs (since the test began) to a failing test."""
    report = yield
    if report.failed and item.get_closest_marker("e2e") is not None:
        _FAILED.append(item.nodeid)
        offsets: dict[str, int] = item.stash.get(_LOG_OFFSETS, {})
        for proc in PROCESSES:
            text = tail(proc.log_path, LOG_TAIL_LINES, offsets.get(proc.name, 0))
            report.sections.append((f"{proc.name} log ({proc.log_path}), tail", text))
    return report


_LOG_OFFSETS = pytest.StashKey[dict[str, int]]()
_KEPT: list[Path] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for root in _KEPT:
        terminalreporter.write_line(f"e2e: logs and data kept in {root}")


@pytest.fixture(autouse=True)
def _remember_log_offsets(request: pytest.FixtureRequest) -> None:
    request.node.stash[_LOG_OFFSETS] = {p.name: p.log_offset() for p in PROCESSES}


# ---------------------------------------------------------------------------- session fixtures


@pytest.fixture(scope="session")
def e2e_root() -> Iterator[Path]:
    """Private working directory of the session.

    Kept for inspection (logs, configs, Synapse's SQLite, the bridge's data) when a test failed
    or ``E2E_KEEP_DIR=1`` is set; removed otherwise.
    """
    root = Path(tempfile.mkdtemp(prefix="bridge-e2e-"))
    # As root the embedded PostgreSQL runs as an unprivileged user that must traverse this.
    root.chmod(0o711)
    yield root
    if _FAILED or os.environ.get("E2E_KEEP_DIR") == "1":
        _KEPT.append(root)
    else:
        shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def bridge_setup(e2e_root: Path) -> tuple[BridgeProcess, Path]:
    """The bridge's config (tokens generated by the CLI) and the registration file."""
    bridge_dir = e2e_root / "bridge"
    bridge_dir.mkdir()
    bridge_dir.chmod(0o711)
    port = free_port()
    synapse_port = free_port()
    config = {
        "homeserver": {"address": f"http://127.0.0.1:{synapse_port}", "domain": SERVER_NAME},
        "appservice": {
            "address": f"http://127.0.0.1:{port}",
            "hostname": "127.0.0.1",
            "port": port,
            "id": APPSERVICE_ID,
            "bot_username": BOT_LOCALPART,
            "as_token": "generate",
            "hs_token": "generate",
            "database": "embedded",
            "embedded_data_dir": "data/postgres",
            # A SIGKILLed bridge leaves its workers' lanes; a short poll picks them up quickly.
            "inbox": {"workers": 2, "retry_delay": 0.2, "poll_interval": 0.5},
        },
        "bridge": {"permissions": {"*": "block", SERVER_NAME: "user"}},
        # The REST API's tokens: HS256 with a shared secret, minted by the tests (RestApi).
        "api": {"jwt": {"algorithm": "HS256", "secret": secrets.token_urlsafe(48)}},
        "logging": {"level": "DEBUG"},
    }
    config_path = bridge_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    registration = bridge_dir / "registration.yaml"
    env = child_env(PYTHONPATH=str(REPO_ROOT))
    _run(
        [
            sys.executable,
            "-m",
            "bridge",
            "generate-registration",
            "-c",
            str(config_path),
            "-r",
            str(registration),
        ],
        cwd=bridge_dir,
        env=env,
        what="bridge generate-registration",
    )
    config = yaml.safe_load(config_path.read_text())  # now with the generated tokens
    bridge = BridgeProcess(
        name="bridge",
        label="e2e",
        argv=[sys.executable, "-m", "bridge", "run", "-c", str(config_path)],
        cwd=bridge_dir,
        env=env,
        log_path=e2e_root / "bridge.log",
        ready_url=f"http://127.0.0.1:{port}/_matrix/mau/ready",
        config_path=config_path,
        config=config,
    )
    return bridge, registration


@pytest.fixture(scope="session")
def synapse(e2e_root: Path, bridge_setup: tuple[BridgeProcess, Path]) -> Iterator[SynapseProcess]:
    """Synapse on a free loopback port, SQLite, with the bridge's registration loaded."""
    bridge, registration = bridge_setup
    port = int(bridge.config["homeserver"]["address"].rsplit(":", 1)[1])
    files = SynapseFiles(e2e_root / "synapse")
    write_config(
        files,
        homeserver_config(
            files, server_name=SERVER_NAME, port=port, app_service_config_files=[registration]
        ),
    )
    proc = SynapseProcess(files, port=port, log_path=e2e_root / "synapse.log", label="e2e")
    PROCESSES.append(proc)
    try:
        proc.start()
        # Synapse's own CLI (shared-secret registration), next to this interpreter.
        script = Path(sys.executable).with_name("register_new_matrix_user")
        register = (
            [str(script)]
            if script.exists()
            else [sys.executable, "-m", "synapse._scripts.register_new_matrix_user"]
        )
        _run(
            [
                *register,
                "-c",
                str(files.config),
                "-u",
                ALICE,
                "-p",
                ALICE_PASSWORD,
                "--no-admin",
                proc.url,
            ],
            cwd=files.directory,
            env=child_env(),
            what="register_new_matrix_user",
        )
        yield proc
    finally:
        proc.stop()
        PROCESSES.remove(proc)


@pytest.fixture(scope="session")
def bridge_proc(
    bridge_setup: tuple[BridgeProcess, Path], synapse: SynapseProcess
) -> Iterator[BridgeProcess]:
    """The running bridge (started after Synapse, stopped before it)."""
    bridge, _ = bridge_setup
    PROCESSES.append(bridge)
    try:
        bridge.start()
        yield bridge
    finally:
        bridge.stop()
        PROCESSES.remove(bridge)
        bridge.stop_orphaned_postgres()


@pytest.fixture
def bridge(bridge_proc: BridgeProcess) -> BridgeProcess:
    """The bridge, running at the start of the test (a test that crashed it restarted it)."""
    if not bridge_proc.running():
        bridge_proc.start()
    return bridge_proc


@pytest.fixture
def homeserver(synapse: SynapseProcess) -> SynapseProcess:
    if not synapse.running():
        synapse.start()
    return synapse


# ---------------------------------------------------------------------------- per-test clients


@pytest.fixture
async def alice(homeserver: SynapseProcess) -> AsyncIterator[ClientAPI]:
    """A real Matrix user, logged in with mautrix (its own device for this test)."""
    async with logged_in(homeserver.url, ALICE, ALICE_PASSWORD) as client:
        yield client


@pytest.fixture
async def appservice(homeserver: SynapseProcess, bridge: BridgeProcess) -> AsyncIterator[IntentAPI]:
    """The bridge bot's mautrix intent: the as_token, acting as the bot (identity assertion)."""
    api = AppServiceAPI(
        base_url=homeserver.url,
        bot_mxid=BOT_MXID,
        token=bridge.as_token,
        state_store=MemoryASStateStore(),
        log=cast(TraceLogger, logging.getLogger("e2e.appservice")),
    )
    intent = IntentAPI(BOT_MXID, api, state_store=api.state_store)
    try:
        yield intent
    finally:
        await api.session.close()


@pytest.fixture
def inbox(bridge: BridgeProcess) -> Inbox:
    return Inbox(bridge)


@pytest.fixture
def network(bridge: BridgeProcess, inbox: Inbox) -> Network:
    return Network(bridge, inbox)


@pytest.fixture
async def rest(bridge: BridgeProcess) -> AsyncIterator[RestApi]:
    """The bridge's REST API over HTTP, with tokens minted for any network user."""
    async with RestApi(bridge) as api:
        yield api


@pytest.fixture
async def new_matrix_user(
    homeserver: SynapseProcess,
) -> AsyncIterator[Callable[[str], Awaitable[ClientAPI]]]:
    """Registers a fresh Matrix user (``<prefix>-<random>``) and returns its logged-in client."""
    clients: list[ClientAPI] = []

    async def make(prefix: str) -> ClientAPI:
        localpart = f"{prefix}-{secrets.token_hex(4)}"
        client = await register_user(homeserver, localpart, secrets.token_urlsafe(12))
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.logout()
            await client.api.session.close()
