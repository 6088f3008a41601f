"""Processes run by the processing, queries and REST-to-Matrix benchmarks (one process each).

``python -m bench.apps KIND ...`` serves until SIGTERM or SIGINT:

- ``bridge --port P --dsn DSN [--config JSON] [--timing] [--trace-sends]``: the bridge's real
  application (``bridge.app.init_app``), set up as ``bridge run`` does it (INFO logging, the
  redacting access log, inbox workers and outbox sender running), on 127.0.0.1:P. ``--config``
  is a JSON object merged into the benchmarks' bridge config (``bench.common``; e.g. the
  homeserver's address, ``api.jwt.secret``, tokens). Instrumentation, not part of the bridge:

  * ``--timing``: an outermost middleware times each request's handling (middlewares, handler,
    rendering; not the socket) and returns it in the ``X-Bench-Server-Ms`` header;
  * ``--trace-sends``: the time (``time.monotonic()``, comparable across processes) before and
    after every homeserver ``/send`` made by the outbox, served at ``GET /_bench/sends``.

- ``homeserver-sink --port P``: a homeserver that answers every call at once with 200 (an
  event id, a room id and a user id, fresh each time), so a benchmark whose bridge queues
  Matrix work (the REST posts' messages) measures the outbox sending it, not retrying an
  unreachable address. Its CPU is the homeserver's, not the bridge's.

- ``floor-processor --dsn DSN --mode minimal|full [--batch N] [--workers N]``: the processing
  floor, see :data:`FLOOR_MINIMAL` and :data:`FLOOR_FULL`; ``--workers`` connections (default
  2, one per core here) each run it in a loop, splitting the work with ``SKIP LOCKED``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from typing import Any

from aiohttp import web

from bench.common import bridge_config_dict
from bench.servers import serve, setup_logging


@web.middleware
async def _timing(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.perf_counter()
    response: web.StreamResponse = await handler(request)
    response.headers["X-Bench-Server-Ms"] = f"{(time.perf_counter() - started) * 1000:.3f}"
    return response


async def run_bridge(args: argparse.Namespace, stop: asyncio.Event) -> None:
    from bridge.api import RedactingAccessLogger
    from bridge.app import init_app
    from bridge.config import parse_config

    setup_logging()
    hs_token = os.environ.get("BENCH_HS_TOKEN", "bench-hs-token")
    config = parse_config(bridge_config_dict(hs_token, args.port, json.loads(args.config)))
    sends: list[dict[str, Any]] = []
    if args.trace_sends:
        from bridge.matrix.outbox.intents import Intents

        original = Intents.send

        async def traced(
            self: Intents, user_id: str, room_id: str, event_type: str, content: Any, txn_id: str
        ) -> str:
            started = time.monotonic()
            event_id = await original(self, user_id, room_id, event_type, content, txn_id)
            sends.append(
                {"txn_id": txn_id, "start": started, "end": time.monotonic(), "event_id": event_id}
            )
            return event_id

        Intents.send = traced  # type: ignore[method-assign]

    app = await init_app(config, args.dsn)
    if args.timing:
        app.middlewares.insert(0, _timing)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid()})

    async def traced_sends(_: web.Request) -> web.Response:
        taken = list(sends)
        sends.clear()
        return web.json_response(taken)

    app.router.add_get("/_bench/stats", stats)
    app.router.add_get("/_bench/sends", traced_sends)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("bridge.cli").getChild("access"),
        access_log_class=RedactingAccessLogger,
    )
    # Several intake processes on one port (appservice.reuse_port), as `bridge run` binds them.
    await serve(runner, args.port, stop, reuse_port=config.appservice.reuse_port)


# ---------------------------------------------------------------------------- processing floor

#: The least processing can do: per batch, one statement takes pending inbox rows, inserts a
#: ``message`` row for each (portal and sender looked up by join) and marks them processed.
#: No per-room order, no sanitising, no notifications, no ``last_message_at``.
FLOOR_MINIMAL = """
WITH batch AS (
    SELECT id, event FROM inbox WHERE state = 'pending' LIMIT $1 FOR UPDATE SKIP LOCKED
), ins AS (
    INSERT INTO message (id, conversation_id, sender_id, content, format, formatted_content,
                         msgtype, sent_at, origin, event_id)
    SELECT gen_random_uuid(), p.conversation_id, u.id, b.event -> 'content' ->> 'body',
           CASE WHEN b.event -> 'content' ->> 'format' = 'org.matrix.custom.html'
                THEN 'org.matrix.custom.html' END,
           CASE WHEN b.event -> 'content' ->> 'format' = 'org.matrix.custom.html'
                THEN b.event -> 'content' ->> 'formatted_body' END,
           COALESCE(b.event -> 'content' ->> 'msgtype', 'm.text'),
           to_timestamp((b.event ->> 'origin_server_ts')::bigint / 1000.0),
           'matrix', b.event ->> 'event_id'
    FROM batch b
    JOIN portal p ON p.room_id = b.event ->> 'room_id'
    JOIN network_user u ON u.matrix_user_id = b.event ->> 'sender'
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
UPDATE inbox SET state = 'processed', processed_at = now()
FROM batch WHERE inbox.id = batch.id
"""

#: The same domain effects as the bridge's handlers, set-based: message rows, a notification
#: for every other participant (``mention`` for those in ``m.mentions``), ``last_message_at``.
#: Still no sanitising of HTML and no per-room order.
FLOOR_FULL = """
WITH batch AS (
    SELECT id, event FROM inbox WHERE state = 'pending' LIMIT $1 FOR UPDATE SKIP LOCKED
), src AS (
    SELECT gen_random_uuid() AS id, p.conversation_id, u.id AS sender_id, b.event
    FROM batch b
    JOIN portal p ON p.room_id = b.event ->> 'room_id'
    JOIN network_user u ON u.matrix_user_id = b.event ->> 'sender'
), ins AS (
    INSERT INTO message (id, conversation_id, sender_id, content, format, formatted_content,
                         msgtype, sent_at, origin, event_id)
    SELECT s.id, s.conversation_id, s.sender_id, s.event -> 'content' ->> 'body',
           CASE WHEN s.event -> 'content' ->> 'format' = 'org.matrix.custom.html'
                THEN 'org.matrix.custom.html' END,
           CASE WHEN s.event -> 'content' ->> 'format' = 'org.matrix.custom.html'
                THEN s.event -> 'content' ->> 'formatted_body' END,
           COALESCE(s.event -> 'content' ->> 'msgtype', 'm.text'),
           to_timestamp((s.event ->> 'origin_server_ts')::bigint / 1000.0),
           'matrix', s.event ->> 'event_id'
    FROM src s
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id, conversation_id, sender_id, content, sent_at
), notified AS (
    INSERT INTO notification (id, user_id, kind, title, body, payload)
    SELECT gen_random_uuid(), cp.user_id,
           CASE WHEN s.event -> 'content' -> 'm.mentions' -> 'user_ids'
                     ? ('@_pn_' || cp.user_id || ':localhost')
                     OR s.event -> 'content' -> 'm.mentions' -> 'user_ids' ? nu.matrix_user_id
                THEN 'mention' ELSE 'message' END,
           COALESCE(c.title, 'New message'), left(i.content, 200),
           jsonb_build_object('conversationId', i.conversation_id, 'messageId', i.id,
                              'senderUserId', i.sender_id)
    FROM ins i
    JOIN src s ON s.id = i.id
    JOIN conversation c ON c.id = i.conversation_id
    JOIN conversation_participant cp ON cp.conversation_id = i.conversation_id
                                    AND cp.user_id <> i.sender_id
    JOIN network_user nu ON nu.id = cp.user_id
), conv AS (
    UPDATE conversation c SET last_message_at = GREATEST(c.last_message_at, x.at)
    FROM (SELECT conversation_id, max(sent_at) AS at FROM ins GROUP BY conversation_id) x
    WHERE c.id = x.conversation_id
)
UPDATE inbox SET state = 'processed', processed_at = now()
FROM batch WHERE inbox.id = batch.id
"""


async def run_floor_processor(args: argparse.Namespace, stop: asyncio.Event) -> None:
    import asyncpg

    statement = FLOOR_FULL if args.mode == "full" else FLOOR_MINIMAL
    # Planned for each batch as it is: a generic plan made while the inbox was empty would
    # join by nested loops over sequential scans once it is not.
    conns = [
        await asyncpg.connect(args.dsn, server_settings={"plan_cache_mode": "force_custom_plan"})
        for _ in range(args.workers)
    ]

    async def worker(conn: asyncpg.Connection) -> None:
        prepared = await conn.prepare(statement)
        while not stop.is_set():
            try:
                async with conn.transaction():
                    await prepared.fetch(args.batch)
            except asyncpg.DeadlockDetectedError:
                continue  # two batches updated the same conversations: redo this one
            if (prepared.get_statusmsg() or "UPDATE 0").split()[-1] == "0":
                # Idle: look again soon (the least a poller can do without LISTEN).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.01)

    try:
        tasks = [asyncio.create_task(worker(c)) for c in conns]
        print(f"READY {os.getpid()}", flush=True)
        await asyncio.gather(*tasks)
    finally:
        for conn in conns:
            await conn.close()


async def run_homeserver_sink(args: argparse.Namespace, stop: asyncio.Event) -> None:
    calls = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await request.read()
        return web.json_response(
            {
                "event_id": f"$sink{calls}",
                "room_id": f"!sink{calls}:localhost",
                "user_id": f"@sink{calls}:localhost",
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    await serve(web.AppRunner(app, access_log=None), args.port, stop)


RUNNERS = {
    "bridge": run_bridge,
    "floor-processor": run_floor_processor,
    "homeserver-sink": run_homeserver_sink,
}


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await RUNNERS[args.kind](args, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(RUNNERS))
    parser.add_argument("--dsn")
    parser.add_argument("--port", type=int)
    parser.add_argument("--config", default="{}", help="bridge: JSON merged into the config")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--trace-sends", action="store_true")
    parser.add_argument("--mode", choices=("minimal", "full"), default="minimal")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="floor: concurrent connections")
    args = parser.parse_args(argv)
    if args.kind in ("bridge", "homeserver-sink") and not args.port:
        parser.error(f"{args.kind} needs --port")
    if args.kind != "homeserver-sink" and not args.dsn:
        parser.error(f"{args.kind} needs --dsn")
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
