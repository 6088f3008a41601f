"""The servers under test, each run in its own process by ``bench/intake.py``.

``python -m bench.servers KIND --port PORT [--dsn DSN] [--workers N]`` serves until SIGTERM or
SIGINT on 127.0.0.1:PORT, with ``BENCH_HS_TOKEN`` from the environment as the homeserver token:

- ``bridge``: the bridge's real application (``bridge.app.init_app``), set up the way
  ``bridge run`` does it (logging at INFO, access log, inbox workers and outbox sender running);
  ``--role intake|worker`` runs one role of a split deployment (``appservice.role``);
- ``mautrix``: ``mautrix.appservice.AppService`` with an in-memory state store and a no-op event
  handler, i.e. what a bridge author gets from the framework before writing any code;
- ``floor``: a bare aiohttp handler: token check, JSON parse, one ``INSERT ... SELECT FROM
  unnest(...)`` into a plain table, ``{}``.

Every server also answers ``GET /_bench/stats`` (not part of what is measured) so the load
generator can check what it received.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bench.common import HOST, UNUSED_HOMESERVER, bridge_config_dict, merge_config

FLOOR_TABLE = """
CREATE TABLE IF NOT EXISTS floor_events (
    event_id   text PRIMARY KEY,
    room_id    text NOT NULL,
    type       text NOT NULL,
    sender     text NOT NULL,
    event      jsonb NOT NULL
)
"""

_FLOOR_INSERT = """
INSERT INTO floor_events (event_id, room_id, type, sender, event)
SELECT u.event_id, u.room_id, u.type, u.sender, u.event::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
     AS u(event_id, room_id, type, sender, event)
ON CONFLICT (event_id) DO NOTHING
"""


def setup_logging() -> None:
    """The same log set-up for every server: INFO to stderr, as ``bridge run`` does by default."""
    from bridge.config import LoggingConfig
    from bridge.logs import setup_logging

    setup_logging(LoggingConfig(level="INFO", format="text"))


def bridge_config(
    hs_token: str,
    port: int,
    workers: int | None,
    max_backlog: int | None = None,
    role: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A minimal valid bridge config (as in the test suite), with the bridge's defaults."""
    from bridge.config import parse_config

    inbox: dict[str, Any] = {}
    if workers:
        inbox["workers"] = workers
    if workers == 0:
        inbox["max_backlog"] = 0  # nothing processes here: no back-pressure either
    elif max_backlog is not None:
        inbox["max_backlog"] = max_backlog
    appservice: dict[str, Any] = {"inbox": inbox} if inbox else {}
    if role is not None:
        appservice["role"] = role
    extra = {"appservice": appservice} if appservice else {}
    return parse_config(merge_config(bridge_config_dict(hs_token, port, extra), overrides or {}))


async def serve(
    runner: web.AppRunner, port: int, stop: asyncio.Event, *, reuse_port: bool = False
) -> None:
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port, reuse_port=reuse_port or None).start()
        print(f"READY {os.getpid()} {port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


async def run_bridge(args: argparse.Namespace, hs_token: str, stop: asyncio.Event) -> None:
    from bridge.app import init_app
    from bridge.serving import worker_priority

    config = bridge_config(
        hs_token, args.port, args.workers, args.max_backlog, args.role, json.loads(args.config)
    )
    worker_priority(config)  # as `bridge run` does: a worker process at appservice.worker_nice
    # --workers 0, the diagnostic variant "intake only": events are stored, never processed.
    app = await init_app(config, args.dsn, background_workers=args.workers != 0)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid()})

    app.router.add_get("/_bench/stats", stats)
    # As `bridge run` does it.
    runner = web.AppRunner(app, access_log=logging.getLogger("bridge.cli").getChild("access"))
    await serve(runner, args.port, stop)


async def run_mautrix(args: argparse.Namespace, hs_token: str, stop: asyncio.Event) -> None:
    from mautrix.appservice import AppService
    from mautrix.appservice.state_store import ASStateStore
    from mautrix.client.state_store import MemoryStateStore

    class MemoryASStateStore(MemoryStateStore, ASStateStore):
        """mautrix ships only a file-backed AS state store; this one stays in memory."""

        def __init__(self) -> None:
            MemoryStateStore.__init__(self)
            ASStateStore.__init__(self)

    received = {"events": 0, "transactions": 0}
    appservice = AppService(
        server=UNUSED_HOMESERVER,
        domain="localhost",
        as_token="bench-as-token",
        hs_token=hs_token,
        bot_localpart="_pn_bot",
        id="bench",
        loop=asyncio.get_running_loop(),
        state_store=MemoryASStateStore(),
    )

    @appservice.matrix_event_handler
    async def on_event(_event: Any) -> None:  # the no-op a bridge author starts from
        received["events"] += 1

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid(), **received})

    appservice.app.router.add_get("/_bench/stats", stats)
    # start() opens the state store, builds an HTTP client for the (unused) homeserver and binds
    # the port; nothing there talks to the homeserver.
    await appservice.start(HOST, args.port)
    print(f"READY {os.getpid()} {args.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await appservice.stop()


async def run_floor(args: argparse.Namespace, hs_token: str, stop: asyncio.Event) -> None:
    import asyncpg

    expected = f"Bearer {hs_token}".encode()
    pool: asyncpg.Pool | None = None

    async def put_transaction(request: web.Request) -> web.Response:
        supplied = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(supplied, expected):
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        try:
            body = json.loads(await request.read())
            events = body["events"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"errcode": "M_NOT_JSON"}, status=400)
        assert pool is not None
        await pool.execute(
            _FLOOR_INSERT,
            [e["event_id"] for e in events],
            [e["room_id"] for e in events],
            [e["type"] for e in events],
            [e["sender"] for e in events],
            [json.dumps(e, ensure_ascii=False) for e in events],
        )
        return web.json_response({})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid()})

    async def database(_: web.Application) -> Any:
        nonlocal pool
        pool = await asyncpg.create_pool(args.dsn, min_size=2, max_size=10)
        async with pool.acquire() as conn:
            await conn.execute(FLOOR_TABLE)
        yield
        await pool.close()

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", put_transaction)
    app.router.add_get("/_bench/stats", stats)
    app.cleanup_ctx.append(database)
    await serve(web.AppRunner(app), args.port, stop)


RUNNERS: dict[str, Callable[[argparse.Namespace, str, asyncio.Event], Awaitable[None]]] = {
    "bridge": run_bridge,
    "mautrix": run_mautrix,
    "floor": run_floor,
}


async def _main(args: argparse.Namespace) -> None:
    hs_token = os.environ["BENCH_HS_TOKEN"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await RUNNERS[args.kind](args, hs_token, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(RUNNERS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", help="asyncpg DSN (bridge, floor)")
    parser.add_argument(
        "--workers", type=int, help="bridge: appservice.inbox.workers (0: no workers, intake only)"
    )
    parser.add_argument(
        "--max-backlog", type=int, help="bridge: appservice.inbox.max_backlog (0: no back-pressure)"
    )
    parser.add_argument(
        "--role", choices=("all", "intake", "worker"), help="bridge: appservice.role"
    )
    parser.add_argument(
        "--config", default="{}", help="bridge: JSON merged into the config (the levers)"
    )
    args = parser.parse_args(argv)
    if args.kind in ("bridge", "floor") and not args.dsn:
        parser.error(f"{args.kind} needs --dsn")
    setup_logging()
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
