"""The REST benchmark's floors: the least a REST server can do on the bridge's database.

``python -m bench.rest_floor --port P --dsn DSN --secret S --post bare|full`` serves until
SIGTERM or SIGINT on 127.0.0.1:P: aiohttp, asyncpg (the bridge's pool settings: 2 to 10
connections, released without a reset round trip) and PyJWT (HS256, ``exp`` and ``sub``
required), with the bridge's paths:

- ``GET /messaging-api/v1/conversations``: one statement, the user's first 25 conversations;
- ``GET /messaging-api/v1/messages?conversationId=``: one statement, the conversation's
  first 25 messages, oldest first as the bridge's first page (no participant check, no
  deleted-for-viewer filter);
- ``POST /messaging-api/v1/messages``: ``bare`` inserts the message row (one statement);
  ``full`` makes the writes the bridge must make for a network post, in one statement: the
  message, the conversation's counters (``last_message_at``, ``message_count``), a
  notification row for every other participant, the outbox row for Matrix and its lane.

Answers are ``{"data": [...]}``, the rows encoded by msgspec.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from typing import Any

import asyncpg
import jwt
import msgspec
from aiohttp import web

from bench.servers import serve

_CONVERSATIONS = """
SELECT c.id, c.is_group, c.title, c.created_by, c.created_at, c.last_message_at, c.message_count
FROM conversation_participant p JOIN conversation c ON c.id = p.conversation_id
WHERE p.user_id = $1
ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT 25
"""
_MESSAGES = """
SELECT id, conversation_id, sender_id, content, format, formatted_content, msgtype,
       sent_at, edited_at, is_active, record_version, origin, event_id
FROM message WHERE conversation_id = $1 ORDER BY sent_at, id LIMIT 25
"""
_POST_BARE = """
INSERT INTO message (id, conversation_id, sender_id, content, sent_at, origin)
VALUES ($1, $2, $3, $4, now(), 'network')
RETURNING id, conversation_id, sender_id, content, msgtype, sent_at, record_version, origin
"""
_POST_FULL = """
WITH msg AS (
    INSERT INTO message (id, conversation_id, sender_id, content, sent_at, origin)
    VALUES ($1, $2, $3, $4, now(), 'network')
    RETURNING id, conversation_id, sender_id, content, msgtype, sent_at, record_version, origin
), conv AS (
    UPDATE conversation c SET last_message_at = msg.sent_at, message_count = message_count + 1
    FROM msg WHERE c.id = msg.conversation_id
), notes AS (
    INSERT INTO notification (id, user_id, kind, title, body, payload)
    SELECT gen_random_uuid(), p.user_id, 'message', 'New message', left(msg.content, 200),
           jsonb_build_object('conversationId', msg.conversation_id, 'messageId', msg.id)
    FROM msg JOIN conversation_participant p
         ON p.conversation_id = msg.conversation_id AND p.user_id <> msg.sender_id
), out AS (
    INSERT INTO outbox (lane, sender, action, payload)
    SELECT 'conversation:' || msg.conversation_id, '@_pn_' || msg.sender_id || ':localhost',
           'send', jsonb_build_object('event_type', 'm.room.message', 'content',
           jsonb_build_object('msgtype', 'm.text', 'body', msg.content),
           'message_id', msg.id)
    FROM msg
    RETURNING lane
), lanes AS (
    INSERT INTO outbox_lane AS l (lane) SELECT lane FROM out
    ON CONFLICT (lane) DO UPDATE SET seq = l.seq + 1
)
SELECT * FROM msg
"""

_encoder = msgspec.json.Encoder()


async def _keep_session(_: asyncpg.Connection) -> None:
    """Release without asyncpg's reset round trip (``RESET ALL; UNLISTEN *; ...``)."""


class _Post(msgspec.Struct):
    conversationId: uuid.UUID
    content: str


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=_encoder.encode({"data": data}), status=status, content_type="application/json"
    )


def build_app(dsn: str, secret: str, post_mode: str) -> web.Application:
    pool: asyncpg.Pool | None = None
    post_sql = _POST_FULL if post_mode == "full" else _POST_BARE
    decoder = msgspec.json.Decoder(_Post)

    def user_of(request: web.Request) -> uuid.UUID:
        _scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
            return uuid.UUID(claims["sub"])
        except (jwt.InvalidTokenError, ValueError):
            raise web.HTTPUnauthorized() from None

    async def conversations(request: web.Request) -> web.Response:
        user = user_of(request)
        assert pool is not None
        rows = await pool.fetch(_CONVERSATIONS, user)
        return _json([dict(r) for r in rows])

    async def messages(request: web.Request) -> web.Response:
        user_of(request)
        try:
            conversation = uuid.UUID(request.query["conversationId"])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest() from None
        assert pool is not None
        rows = await pool.fetch(_MESSAGES, conversation)
        return _json([dict(r) for r in rows])

    async def post(request: web.Request) -> web.Response:
        user = user_of(request)
        try:
            body = decoder.decode(await request.read())
        except msgspec.DecodeError:
            raise web.HTTPBadRequest() from None
        assert pool is not None
        row = await pool.fetchrow(post_sql, uuid.uuid4(), body.conversationId, user, body.content)
        return _json(dict(row) if row else None, 201)

    async def database(_: web.Application) -> Any:
        nonlocal pool
        # As the bridge's pool: no reset query when a connection goes back (it keeps no
        # session state), so a request is one round trip.
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10, reset=_keep_session)
        yield
        await pool.close()

    async def stats(_: web.Request) -> web.Response:
        return _json({"pid": os.getpid()})

    app = web.Application()
    app.router.add_get("/messaging-api/v1/conversations", conversations)
    app.router.add_get("/messaging-api/v1/messages", messages)
    app.router.add_post("/messaging-api/v1/messages", post)
    app.router.add_get("/_bench/stats", stats)
    app.cleanup_ctx.append(database)
    return app


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = build_app(args.dsn, args.secret, args.post)
    await serve(web.AppRunner(app, access_log=None), args.port, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--post", choices=("bare", "full"), default="full")
    asyncio.run(_main(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
