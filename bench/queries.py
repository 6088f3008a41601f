"""Queries benchmark: the REST API's list calls on a database of a million messages.

One private Postgres; the bridge's schema (``ensure_schema``) bulk-loaded with SQL
(``INSERT ... SELECT ... generate_series``, deterministic):

- 20,000 network users (every tenth linked to a Matrix user);
- 10,000 conversations: 10 big groups of 12, 70 % of the rest 1:1, 30 % groups of 3-8;
  user 0 (the "heavy" user) takes part in the first 1,000 of them;
- 1,000,000 messages: 20,000 in each big group, 800,000 spread over the others (skewed:
  a few hundred in the busiest, a handful in the quietest), ``sent_at`` over the last year,
  a third with HTML, half from Matrix (with an event id), 1 % deleted for everyone, 10,500
  hidden by one participant; read markers for half the participants of every conversation;
- 300,000 notifications: 20,000 for the heavy user, the rest spread over everyone.

Then the bridge's real app runs in its own process (``bench.apps bridge --timing``: default
config, HS256 JWTs with a configured secret) and every measured call is a real HTTP request
on 127.0.0.1 with a JWT signed by that secret (``bridge.cli_token.mint_token``). For each
call, alternately: the REST request, then a bare SQL query asking the same page of the same
table directly (no auth, no participants check, no ``readBy``/``deletedFor``, no count,
no JSON), timed from this process over asyncpg. Reported: server-side time (the bridge's
whole handling: middlewares, JWT, its queries, rendering; from ``X-Bench-Server-Ms``),
client-side time, the envelope's ``elapsedMs``, and the bare query's round trip; p50 and p99.

``--explain`` prints ``EXPLAIN (ANALYZE, BUFFERS)`` of every statement each call runs
(captured by calling the bridge's own services with a recording connection), as planned
fresh (custom plan) and as a cached generic plan.

Run from the repository root: ``python -m bench.queries [--quick] [--json] [--explain FILE]``.
"""

# The bulk load builds its statements from integers of this file only (no outside input).
# ruff: noqa: S608

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg

from bench.common import (
    HOST,
    BenchError,
    Child,
    Cluster,
    bridge_config_dict,
    free_port,
    header_line,
    ignore_interrupts,
    install_interrupts,
    log,
    machine_facts,
    markdown_table,
    server_version,
    stats,
    workdir,
)
from bridge.api.cursor import CONVERSATIONS, MESSAGES, NOTIFICATIONS
from bridge.api.cursor import encode as encode_cursor
from bridge.cli_token import mint_token
from bridge.config import parse_config
from bridge.db.database import init_connection
from bridge.db.schema import ensure_schema

JWT_SECRET = "bench-jwt-secret-of-at-least-32-bytes!"
#: The seek call starts after the message at this 0-based position: page 400's rows.
SEEK_AT = 399 * 25 - 1
GOALS = {"p50": 5.0, "p99": 20.0}


@dataclass(frozen=True)
class Sizes:
    users: int
    conversations: int
    big_conversations: int
    big_size: int
    other_messages: int
    notifications: int
    heavy_notifications: int
    heavy_conversations: int
    requests: int
    warmup: int


FULL = Sizes(
    users=20_000,
    conversations=10_000,
    big_conversations=10,
    big_size=20_000,
    other_messages=800_000,
    notifications=300_000,
    heavy_notifications=20_000,
    heavy_conversations=1_000,
    requests=200,
    warmup=20,
)
QUICK = Sizes(
    users=2_000,
    conversations=1_000,
    big_conversations=2,
    big_size=12_000,
    other_messages=40_000,
    notifications=30_000,
    heavy_notifications=10_000,
    heavy_conversations=200,
    requests=60,
    warmup=5,
)


# ---------------------------------------------------------------------------- data


def _load_sql(z: Sizes) -> list[str]:
    """The bulk load, statement by statement (deterministic: ``setseed`` first)."""
    u, c, big = z.users, z.conversations, z.big_conversations
    start = "(timestamptz '2025-11-01 00:00:00+00')"
    year = "interval '365 days'"
    return [
        "SELECT setseed(0.17)",
        f"""
        INSERT INTO network_user (id, display_name, matrix_user_id, created_at, updated_at)
        SELECT md5('u' || i)::uuid, 'Person ' || i,
               CASE WHEN i % 10 = 0 THEN '@person' || i || ':localhost' END,
               {start} - interval '30 days', {start} - interval '30 days'
        FROM generate_series(0, {u - 1}) i
        """,
        f"""
        CREATE TEMP TABLE conv_meta AS
        SELECT c, md5('c' || c)::uuid AS id, (c < {big} OR c % 10 >= 7) AS is_group,
               CASE WHEN c < {big} THEN 12 WHEN c % 10 >= 7 THEN 3 + c % 6 ELSE 2 END AS n
        FROM generate_series(0, {c - 1}) c
        """,
        f"""
        CREATE TEMP TABLE parts AS
        SELECT c, uid, (row_number() OVER (PARTITION BY c ORDER BY min(j)) - 1)::int AS ord
        FROM (SELECT m.c, j,
                     CASE WHEN j = 0 AND m.c < {z.heavy_conversations} THEN 0
                          ELSE (m.c * 7919 + j * 4729) % {u} END AS uid
              FROM conv_meta m, generate_series(0, m.n - 1) j) x
        GROUP BY c, uid
        """,
        "CREATE INDEX ON parts (c, ord)",
        """
        UPDATE conv_meta m SET n = x.n, is_group = m.is_group OR x.n <> 2
        FROM (SELECT c, count(*)::int AS n FROM parts GROUP BY c) x WHERE x.c = m.c
        """,
        "ANALYZE conv_meta",
        "ANALYZE parts",
        f"""
        INSERT INTO conversation (id, is_group, title, created_by, direct_key, created_at)
        SELECT m.id, m.is_group, CASE WHEN m.is_group THEN 'Group ' || m.c END,
               (SELECT md5('u' || p.uid)::uuid FROM parts p WHERE p.c = m.c AND p.ord = 0),
               CASE WHEN NOT m.is_group THEN
                    (SELECT string_agg(x::text, ':' ORDER BY x)
                     FROM (SELECT md5('u' || p.uid)::uuid AS x FROM parts p WHERE p.c = m.c) s)
               END,
               {start} - interval '1 day'
        FROM conv_meta m
        """,
        f"""
        INSERT INTO conversation_participant (conversation_id, user_id, joined_at)
        SELECT m.id, md5('u' || p.uid)::uuid, {start} - interval '1 day' + p.ord * interval '1 s'
        FROM parts p JOIN conv_meta m USING (c)
        """,
        # The big groups: big_size messages each, evenly over the year.
        f"""
        INSERT INTO message (id, conversation_id, sender_id, content, format, formatted_content,
                             sent_at, is_active, origin, event_id)
        SELECT gen_random_uuid(), m.id, md5('u' || p.uid)::uuid, g.body,
               CASE WHEN g.i % 3 = 0 THEN 'org.matrix.custom.html' END,
               CASE WHEN g.i % 3 = 0 THEN '<p>' || g.body || '</p>' END,
               {start} + {year} * g.i / {big * z.big_size}.0, g.k % 100 <> 0,
               CASE WHEN g.i % 2 = 0 THEN 'matrix' ELSE 'network' END,
               CASE WHEN g.i % 2 = 0 THEN '$b' || g.i END
        FROM (SELECT i, i % {big} AS c, i / {big} AS k,
                     substr(repeat(md5(i::text) || ' ', 7), 1, 50 + i % 150) AS body
              FROM generate_series(0, {big * z.big_size - 1}) i) g
        JOIN conv_meta m ON m.c = g.c
        JOIN parts p ON p.c = g.c AND p.ord = g.k % m.n
        """,
        # The others: skewed over conversations, jittered within the hour.
        f"""
        INSERT INTO message (id, conversation_id, sender_id, content, format, formatted_content,
                             sent_at, is_active, origin, event_id)
        SELECT gen_random_uuid(), m.id, md5('u' || p.uid)::uuid, g.body,
               CASE WHEN g.i % 3 = 0 THEN 'org.matrix.custom.html' END,
               CASE WHEN g.i % 3 = 0 THEN '<p>' || g.body || '</p>' END,
               {start} + {year} * g.i / {z.other_messages}.0 + random() * interval '1 hour',
               g.i % 100 <> 0,
               CASE WHEN g.i % 2 = 0 THEN 'matrix' ELSE 'network' END,
               CASE WHEN g.i % 2 = 0 THEN '$r' || g.i END
        FROM (SELECT i, {big} + floor(({c} - {big}) * power(random(), 1.6))::int AS c,
                     substr(repeat(md5(i::text) || ' ', 7), 1, 50 + i % 150) AS body
              FROM generate_series(0, {z.other_messages - 1}) i) g
        JOIN conv_meta m ON m.c = g.c
        JOIN parts p ON p.c = g.c AND p.ord = g.i % m.n
        """,
        """
        UPDATE conversation c SET last_message_at = x.at, message_count = x.active
        FROM (SELECT conversation_id, max(sent_at) AS at, count(*) FILTER (WHERE is_active)
                  AS active
              FROM message GROUP BY 1) x
        WHERE c.id = x.conversation_id
        """,
        # Half the participants of each conversation read up to its latest message.
        """
        INSERT INTO read_marker (conversation_id, user_id, message_id, read_up_to, updated_at)
        SELECT l.conversation_id, cp.user_id, l.id, l.sent_at, l.sent_at
        FROM (SELECT DISTINCT ON (conversation_id) conversation_id, id, sent_at FROM message
              ORDER BY conversation_id, sent_at DESC, id DESC) l
        JOIN conversation_participant cp ON cp.conversation_id = l.conversation_id
        WHERE abs(hashtext(cp.user_id::text)) % 2 = 0
        """,
        # Hidden by one participant (the sender): 10,000 anywhere, 500 in the first big group
        # hidden by the heavy user.
        """
        INSERT INTO message_deletion (message_id, user_id, deleted_at, conversation_id)
        SELECT id, sender_id, sent_at, conversation_id FROM message ORDER BY id LIMIT 10000
        ON CONFLICT DO NOTHING
        """,
        f"""
        INSERT INTO message_deletion (message_id, user_id, deleted_at, conversation_id)
        SELECT id, md5('u0')::uuid, sent_at, conversation_id FROM message
        WHERE conversation_id = md5('c0')::uuid ORDER BY id LIMIT {min(500, z.big_size // 20)}
        ON CONFLICT DO NOTHING
        """,
        f"""
        INSERT INTO notification (id, user_id, kind, title, body, payload, created_at, seen_at)
        SELECT gen_random_uuid(),
               CASE WHEN i < {z.heavy_notifications} THEN md5('u0')::uuid
                    ELSE md5('u' || (i % {u}))::uuid END,
               (ARRAY['message', 'mention', 'connection_request', 'announcement'])[1 + i % 4],
               'Notification ' || i, 'Something happened: ' || md5(i::text),
               jsonb_build_object('n', i), ts, CASE WHEN i % 3 <> 0 THEN ts + interval '1 h' END
        FROM (SELECT i, {start} + random() * {year} AS ts
              FROM generate_series(0, {z.notifications - 1}) i) g
        """,
    ]


async def load(dsn: str, z: Sizes) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, server_settings={"synchronous_commit": "off"})
    try:
        for sql in _load_sql(z):
            started = time.monotonic()
            await conn.execute(sql)
            took = time.monotonic() - started
            if took > 2:
                log(f"  {took:5.1f} s  {' '.join(sql.split())[:70]}")
        await conn.execute("VACUUM ANALYZE")
        counts = await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM network_user) AS users,
                   (SELECT count(*) FROM conversation) AS conversations,
                   (SELECT count(*) FROM conversation_participant) AS participants,
                   (SELECT count(*) FROM message) AS messages,
                   (SELECT count(*) FROM read_marker) AS read_markers,
                   (SELECT count(*) FROM message_deletion) AS deletions,
                   (SELECT count(*) FROM notification) AS notifications,
                   (SELECT count(*) FROM conversation_participant
                    WHERE user_id = md5('u0')::uuid) AS heavy_conversations,
                   (SELECT count(*) FROM message WHERE conversation_id = md5('c0')::uuid)
                       AS big_conversation_messages,
                   (SELECT max(n) FROM (SELECT count(*) AS n FROM message
                                        WHERE conversation_id NOT IN (
                                            SELECT md5('c' || c)::uuid
                                            FROM generate_series(0, 99) c)
                                        GROUP BY conversation_id) x) AS busiest_other,
                   (SELECT count(*) FROM message m
                    WHERE m.conversation_id = md5('c0')::uuid AND m.is_active
                      AND NOT EXISTS (SELECT 1 FROM message_deletion d
                                      WHERE d.message_id = m.id
                                        AND d.user_id = md5('u0')::uuid)) AS visible,
                   (SELECT id FROM message m
                    WHERE m.conversation_id = md5('c0')::uuid AND m.is_active
                      AND NOT EXISTS (SELECT 1 FROM message_deletion d
                                      WHERE d.message_id = m.id
                                        AND d.user_id = md5('u0')::uuid)
                    ORDER BY sent_at, id OFFSET $1 LIMIT 1) AS anchor_id,
                   (SELECT user_id FROM conversation_participant
                    WHERE user_id <> md5('u0')::uuid
                    GROUP BY user_id HAVING count(*) = 2 ORDER BY user_id LIMIT 1) AS typical,
                   pg_size_pretty(pg_database_size(current_database())) AS size
            """,
            SEEK_AT,
        )
        data = dict(counts)
        data["anchor_sent_at"] = await conn.fetchval(
            "SELECT sent_at FROM message WHERE id = $1", data["anchor_id"]
        )
        # Where the cursor calls start: the last row before each list's last page.
        last_msg_at = ((data["visible"] - 1) // 25) * 25 - 1
        data["last_messages_after"] = tuple(
            await conn.fetchrow(
                """
                SELECT sent_at, id FROM message m
                WHERE m.conversation_id = md5('c0')::uuid AND m.is_active
                  AND NOT EXISTS (SELECT 1 FROM message_deletion d
                                  WHERE d.message_id = m.id AND d.user_id = md5('u0')::uuid)
                ORDER BY sent_at, id OFFSET $1 LIMIT 1
                """,
                last_msg_at,
            )
        )
        data["last_conversations_after"] = tuple(
            await conn.fetchrow(
                """
                SELECT COALESCE(c.last_message_at, c.created_at) AS at, c.id
                FROM conversation_participant p JOIN conversation c ON c.id = p.conversation_id
                WHERE p.user_id = md5('u0')::uuid
                ORDER BY at DESC, c.id DESC OFFSET $1 LIMIT 1
                """,
                ((z.heavy_conversations - 1) // 25) * 25 - 1,
            )
        )
        data["last_notifications_after"] = tuple(
            await conn.fetchrow(
                """
                SELECT created_at, id FROM notification WHERE user_id = md5('u0')::uuid
                ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1
                """,
                ((z.heavy_notifications - 1) // 20) * 20 - 1,
            )
        )
        return data
    finally:
        await conn.close()


def uid(kind: str, n: int) -> uuid.UUID:
    """The deterministic ids of the load: ``md5('u' || n)::uuid`` and so on."""
    import hashlib

    return uuid.UUID(hashlib.md5(f"{kind}{n}".encode()).hexdigest())  # noqa: S324


# ---------------------------------------------------------------------------- the calls


@dataclass(frozen=True)
class Call:
    name: str
    user: uuid.UUID
    path: str
    query: dict[str, str]
    bare_sql: str
    bare_args: tuple[Any, ...]
    service: str  # what --explain replays: messages, conversations, notifications
    limit: int
    offset: int
    conversation: uuid.UUID | None = None
    after: uuid.UUID | None = None
    cursor_at: tuple[Any, uuid.UUID] | None = None  # a keyset cursor call's position
    unread_by: uuid.UUID | None = None  # the unreadBy filter
    deleted_for: uuid.UUID | None = None  # the deletedFor filter


_BARE_MESSAGES = """
SELECT id, conversation_id, sender_id, content, format, formatted_content, msgtype, media,
       reply_to_message_id, mentions, sent_at, edited_at, is_active, record_version, origin,
       event_id
FROM message WHERE conversation_id = $1 ORDER BY sent_at, id LIMIT $2 OFFSET $3
"""
_BARE_UNREAD = """
SELECT id, conversation_id, sender_id, content, format, formatted_content, msgtype, media,
       reply_to_message_id, mentions, sent_at, edited_at, is_active, record_version, origin,
       event_id
FROM message WHERE conversation_id = $1 AND sender_id <> $4
  AND sent_at > COALESCE((SELECT read_up_to FROM read_marker
                          WHERE conversation_id = $1 AND user_id = $4), '-infinity')
ORDER BY sent_at, id LIMIT $2 OFFSET $3
"""
_BARE_HIDDEN = """
SELECT id, conversation_id, sender_id, content, format, formatted_content, msgtype, media,
       reply_to_message_id, mentions, sent_at, edited_at, is_active, record_version, origin,
       event_id
FROM message WHERE conversation_id = $1 AND id IN (
    SELECT message_id FROM message_deletion WHERE user_id = $4 AND conversation_id = $1)
ORDER BY sent_at, id LIMIT $2 OFFSET $3
"""
_BARE_SEEK = """
SELECT id, conversation_id, sender_id, content, format, formatted_content, msgtype, media,
       reply_to_message_id, mentions, sent_at, edited_at, is_active, record_version, origin,
       event_id
FROM message WHERE conversation_id = $1 AND (sent_at, id) > ($2, $3)
ORDER BY sent_at, id LIMIT $4
"""
_BARE_CONVERSATIONS = """
SELECT c.id, c.is_group, c.title, c.topic, c.created_by, c.created_at, c.last_message_at
FROM conversation_participant p JOIN conversation c ON c.id = p.conversation_id
WHERE p.user_id = $1
ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT $2 OFFSET $3
"""
_BARE_CONVERSATIONS_KEYSET = """
SELECT c.id, c.is_group, c.title, c.topic, c.created_by, c.created_at, c.last_message_at
FROM conversation_participant p JOIN conversation c ON c.id = p.conversation_id
WHERE p.user_id = $1 AND (COALESCE(c.last_message_at, c.created_at), c.id) < ($2, $3)
ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT $4
"""
_BARE_NOTIFICATIONS_KEYSET = """
SELECT id, user_id, kind, title, body, payload, created_at, seen_at
FROM notification WHERE user_id = $1 AND (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC LIMIT $4
"""
_BARE_NOTIFICATIONS = """
SELECT id, user_id, kind, title, body, payload, created_at, seen_at
FROM notification WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3
"""


def calls(z: Sizes, data: dict[str, Any]) -> list[Call]:
    """The measured calls, on the loaded ``data`` (see :func:`load`)."""
    typical, visible = data["typical"], data["visible"]
    heavy = uid("u", 0)
    big = uid("c", 0)
    last_msg_page = (visible - 1) // 25 + 1
    deep_msg_page = min(400, last_msg_page)
    conv_last = (z.heavy_conversations - 1) // 25 + 1
    notif_last = (z.heavy_notifications - 1) // 20 + 1

    def messages(page: int, name: str) -> Call:
        q = {"conversationId": str(big), "pageNumber": str(page), "pageRowCount": "25"}
        offset = (page - 1) * 25
        return Call(
            name,
            heavy,
            "/messaging-api/v1/messages",
            q,
            _BARE_MESSAGES,
            (big, 25, offset),
            "messages",
            25,
            offset,
            big,
        )

    def by_user(name: str, filter_name: str, bare_sql: str) -> Call:
        """Page 1 of the big conversation filtered on what the heavy user did (read, hid)."""
        q = {"conversationId": str(big), filter_name: str(heavy), "pageRowCount": "25"}
        return Call(
            name,
            heavy,
            "/messaging-api/v1/messages",
            q,
            bare_sql,
            (big, 25, 0, heavy),
            "messages",
            25,
            0,
            big,
            unread_by=heavy if filter_name == "unreadBy" else None,
            deleted_for=heavy if filter_name == "deletedFor" else None,
        )

    def conversations(user: uuid.UUID, page: int, name: str) -> Call:
        q = {"pageNumber": str(page), "pageRowCount": "25"}
        offset = (page - 1) * 25
        return Call(
            name,
            user,
            "/messaging-api/v1/conversations",
            q,
            _BARE_CONVERSATIONS,
            (user, 25, offset),
            "conversations",
            25,
            offset,
        )

    def notifications(user: uuid.UUID, page: int, name: str) -> Call:
        q = {"page": str(page), "limit": "20"}
        offset = (page - 1) * 20
        return Call(
            name,
            user,
            "/notification-api/notifications",
            q,
            _BARE_NOTIFICATIONS,
            (user, 20, offset),
            "notifications",
            20,
            offset,
        )

    seek = Call(
        f"messages of a conversation, after message #{SEEK_AT + 1} (afterMessageId)",
        heavy,
        "/messaging-api/v1/messages",
        {
            "conversationId": str(big),
            "afterMessageId": str(data["anchor_id"]),
            "pageRowCount": "25",
        },
        _BARE_SEEK,
        (big, data["anchor_sent_at"], data["anchor_id"], 25),
        "messages",
        25,
        0,
        big,
        data["anchor_id"],
    )

    def by_cursor(service: str, name: str, position: tuple[Any, uuid.UUID]) -> Call:
        kind = {"messages": MESSAGES, "conversations": CONVERSATIONS}.get(service, NOTIFICATIONS)
        q = {"cursor": encode_cursor(kind, position)}
        if service == "messages":
            q |= {"conversationId": str(big), "pageRowCount": "25"}
            bare = (_BARE_SEEK, (big, *position, 25))
        elif service == "conversations":
            q |= {"pageRowCount": "25"}
            bare = (_BARE_CONVERSATIONS_KEYSET, (heavy, *position, 25))
        else:
            q |= {"limit": "20"}
            bare = (_BARE_NOTIFICATIONS_KEYSET, (heavy, *position, 20))
        limit = 20 if service == "notifications" else 25
        return Call(
            name,
            heavy,
            path={
                "messages": "/messaging-api/v1/messages",
                "conversations": "/messaging-api/v1/conversations",
            }.get(service, "/notification-api/notifications"),
            query=q,
            bare_sql=bare[0],
            bare_args=bare[1],
            service=service,
            limit=limit,
            offset=0,
            conversation=big if service == "messages" else None,
            cursor_at=position,
        )

    return [
        messages(1, "messages of a conversation, page 1"),
        messages(deep_msg_page, f"messages of a conversation, page {deep_msg_page}"),
        seek,
        messages(last_msg_page, f"messages of a conversation, page {last_msg_page} (last)"),
        by_user(
            "messages of a conversation unread by the user (unreadBy), page 1",
            "unreadBy",
            _BARE_UNREAD,
        ),
        by_user(
            "messages of a conversation the user hid (deletedFor), page 1",
            "deletedFor",
            _BARE_HIDDEN,
        ),
        conversations(heavy, 1, "conversations of the heavy user, page 1"),
        conversations(
            heavy, conv_last, f"conversations of the heavy user, page {conv_last} (last)"
        ),
        conversations(typical, 1, "conversations of a typical user, page 1"),
        notifications(heavy, 1, "notifications of the heavy user, page 1"),
        notifications(
            heavy, notif_last, f"notifications of the heavy user, page {notif_last} (last)"
        ),
        notifications(typical, 1, "notifications of a typical user, page 1"),
        by_cursor(
            "messages",
            f"messages of a conversation, by cursor to page {deep_msg_page}",
            (data["anchor_sent_at"], data["anchor_id"]),
        ),
        by_cursor(
            "messages",
            f"messages of a conversation, by cursor to page {last_msg_page} (last)",
            data["last_messages_after"],
        ),
        by_cursor(
            "conversations",
            f"conversations of the heavy user, by cursor to page {conv_last} (last)",
            data["last_conversations_after"],
        ),
        by_cursor(
            "notifications",
            f"notifications of the heavy user, by cursor to page {notif_last} (last)",
            data["last_notifications_after"],
        ),
    ]


async def measure(
    session: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    port: int,
    call: Call,
    token: str,
    count: int,
    warmup: int,
) -> dict[str, Any]:
    url = f"http://{HOST}:{port}{call.path}"
    headers = {"Authorization": f"Bearer {token}"}
    server: list[float] = []
    client: list[float] = []
    envelope: list[float] = []
    bare: list[float] = []
    rows = None
    async with pool.acquire() as conn:
        statement = await conn.prepare(call.bare_sql)
        for n in range(warmup + count):
            started = time.perf_counter()
            async with session.get(url, params=call.query, headers=headers) as resp:
                body = await resp.read()
                took = (time.perf_counter() - started) * 1000
                if resp.status != 200:
                    raise BenchError(f"{call.name}: HTTP {resp.status}: {body[:300]!r}")
                server_ms = float(resp.headers["X-Bench-Server-Ms"])
            started = time.perf_counter()
            bare_rows = await statement.fetch(*call.bare_args)
            bare_ms = (time.perf_counter() - started) * 1000
            if n < warmup:
                continue
            data = json.loads(body)
            rows = data.get("rowCount")
            client.append(took)
            server.append(server_ms)
            envelope.append(float(data["elapsedMs"]))
            bare.append(bare_ms)
    expected = len(bare_rows)
    return {
        "name": call.name,
        "rows": rows,
        "bare_rows": expected,
        "paging": data.get("paging"),
        "server": stats(server),
        "client": stats(client),
        "envelope_elapsed_ms": stats(envelope),
        "bare": stats(bare),
    }


# ---------------------------------------------------------------------------- explain


class RecordingConnection:
    """Passes statements to a real connection and remembers them (for EXPLAIN)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, query: str, *args: Any) -> Any:
        self.statements.append((query, args))
        return await self._conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        self.statements.append((query, args))
        return await self._conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.statements.append((query, args))
        return await self._conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> Any:
        self.statements.append((query, args))
        return await self._conn.execute(query, *args)


async def explain(dsn: str, call: Call) -> list[dict[str, Any]]:
    """Replay ``call`` through the bridge's services; EXPLAIN every statement it ran."""
    from bridge.db.database import Database
    from bridge.listing import Window
    from bridge.messaging.filters import ConversationFilter, MessageFilter
    from bridge.services import build_services

    # Only the services' ``conn`` methods run here, on the recording connection: the pool
    # their entry points would use is never opened.
    services = build_services(Database(dsn))
    notifications, messaging, users = services.notifications, services.messaging, services.users
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        rec = RecordingConnection(conn)
        await users.ensure(rec, call.user, None)
        window = Window(limit=call.limit, offset=call.offset, after=call.cursor_at)
        if call.service == "messages":
            await messaging.list_messages_page(
                rec,
                call.user,
                [call.conversation] if call.conversation else None,
                MessageFilter(
                    unread_by=[call.unread_by] if call.unread_by else None,
                    deleted_for=[call.deleted_for] if call.deleted_for else None,
                ),
                window,
                after_message_id=call.after,
            )
        elif call.service == "conversations":
            await messaging.list_conversations_page(
                rec,
                call.user,
                ConversationFilter(),
                window,
            )
        else:
            await notifications.list_page(rec, call.user, window)
        out = []
        for query, args in rec.statements:
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + query, *args)
            custom = "\n".join(r[0] for r in rows)
            # The plan a prepared statement gets once Postgres caches a generic one (asyncpg
            # prepares every statement; after five executions Postgres may switch to it).
            await conn.execute(f"PREPARE bench_stmt AS {query}")
            try:
                await conn.execute("SET plan_cache_mode = force_generic_plan")
                values = ", ".join(_literal(a) for a in args)
                execute = f"EXECUTE bench_stmt({values})" if args else "EXECUTE bench_stmt"
                rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + execute)
                generic = "\n".join(r[0] for r in rows)
            finally:
                await conn.execute("RESET plan_cache_mode")
                await conn.execute("DEALLOCATE bench_stmt")
            out.append({"statement": " ".join(query.split()), "custom": custom, "generic": generic})
        return out
    finally:
        await conn.close()


def _literal(value: Any) -> str:
    """An untyped SQL literal of a statement argument (EXECUTE takes no parameters), which
    Postgres coerces to the prepared statement's parameter type."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "'true'" if value else "'false'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        inner = ",".join('"' + str(v).replace('"', '\\"') + '"' for v in value)
        return "'{" + inner.replace("'", "''") + "}'"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text.replace("'", "''") + "'"


def _execution_ms(plan: str) -> float:
    for line in plan.splitlines():
        if line.strip().startswith("Execution Time:"):
            return float(line.split(":")[1].split()[0])
    return float("nan")


# ---------------------------------------------------------------------------- the run


def chosen(args: argparse.Namespace, every: list[Call]) -> list[Call]:
    """The calls ``--only`` names (all of them without it)."""
    if not args.only:
        return every
    return [c for c in every if any(part in c.name for part in args.only)]


async def run(args: argparse.Namespace, z: Sizes, cluster: Cluster, root: Path) -> dict[str, Any]:
    run_started = time.monotonic()
    facts = machine_facts()
    pg = await server_version(cluster.admin_dsn)
    dsn = await cluster.create_database("queries")
    await ensure_schema(dsn, migrate=True)
    log("bulk-loading (a minute or two at full size)")
    started = time.monotonic()
    counts = await load(dsn, z)
    load_s = time.monotonic() - started
    log(f"loaded in {load_s:.0f} s: {counts}")
    await cluster.checkpoint()

    port = free_port()
    extra = {"api": {"jwt": {"secret": JWT_SECRET}}}
    config = parse_config(bridge_config_dict("bench-hs-token", port, extra))
    tokens: dict[uuid.UUID, str] = {}
    explained: list[dict[str, Any]] = []
    phases: dict[str, list[dict[str, Any]]] = {}
    variants = ["default"] + ([] if args.no_variant else ["custom plans"])
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        for variant in variants:
            if variant == "custom plans":
                # A database setting, not a change to the bridge: every session plans each
                # statement for its parameters instead of reusing a cached generic plan.
                admin = await asyncpg.connect(cluster.admin_dsn)
                try:
                    await admin.execute(
                        "ALTER DATABASE queries SET plan_cache_mode = force_custom_plan"
                    )
                finally:
                    await admin.close()
                await pool.expire_connections()
            log(f"variant: {variant}")
            child = Child.module(
                f"bridge-queries-{len(phases)}",
                "bench.apps",
                [
                    "bridge",
                    "--port",
                    str(port),
                    "--dsn",
                    dsn,
                    "--timing",
                    "--config",
                    json.dumps(extra),
                ],
                root,
            )
            results: list[dict[str, Any]] = []
            try:
                child.start()
                connector = aiohttp.TCPConnector(limit=1)
                timeout = aiohttp.ClientTimeout(total=60)
                async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                    for call in chosen(args, calls(z, counts)):
                        token = tokens.setdefault(
                            call.user, mint_token(config, call.user, ttl=3600)
                        )
                        result = await measure(
                            session,
                            pool,
                            port,
                            call,
                            token,
                            args.requests or z.requests,
                            z.warmup,
                        )
                        results.append(result)
                        log(
                            f"{call.name}: server p50 {result['server']['p50']:.2f} ms, p99 "
                            f"{result['server']['p99']:.2f} ms; bare SQL p50 "
                            f"{result['bare']['p50']:.2f} ms"
                        )
            finally:
                child.stop()
            phases[variant] = results
        if args.explain:
            for call in chosen(args, calls(z, counts)):
                explained.append({"call": call.name, "statements": await explain(dsn, call)})
    finally:
        await pool.close()
    return {
        "benchmark": "queries",
        "machine": facts,
        "postgres": pg,
        "data": counts,
        "load_seconds": round(load_s, 1),
        "requests_per_call": args.requests or z.requests,
        "results": phases["default"],
        "variants": {k: v for k, v in phases.items() if k != "default"},
        "explain": explained,
        "seconds": round(time.monotonic() - run_started, 1),
    }


def print_report(report: dict[str, Any], out: TextIO) -> None:
    print(header_line("Queries benchmark", report["machine"], report["postgres"]), file=out)
    d = report["data"]
    print(
        f"{d['messages']} messages in {d['conversations']} conversations, {d['users']} users, "
        f"{d['participants']} participations, {d['notifications']} notifications, "
        f"{d['read_markers']} read markers, {d['deletions']} hidden; database {d['size']} "
        f"(loaded in {report['load_seconds']} s). Heavy user: {d['heavy_conversations']} "
        f"conversations; big conversation: {d['big_conversation_messages']} messages. "
        f"{report['requests_per_call']} requests per call.\n",
        file=out,
    )
    rows = []
    verdicts = []
    for r in report["results"]:
        s, c, b = r["server"], r["client"], r["bare"]
        ok = s["p50"] < GOALS["p50"] and s["p99"] < GOALS["p99"]
        rows.append(
            [
                r["name"],
                r["rows"],
                s["p50"],
                s["p99"],
                c["p50"],
                c["p99"],
                r["envelope_elapsed_ms"]["p50"],
                b["p50"],
                b["p99"],
                s["p50"] / b["p50"],
                "ok" if ok else "MISSED",
            ]
        )
        if not ok:
            verdicts.append(
                f"{r['name']}: p50 {s['p50']:.1f} ms ({s['p50'] / GOALS['p50']:.1f}x the goal), "
                f"p99 {s['p99']:.1f} ms ({s['p99'] / GOALS['p99']:.1f}x)"
            )
    markdown_table(
        [
            "call",
            "rows",
            "server p50 ms",
            "server p99 ms",
            "client p50 ms",
            "client p99 ms",
            "elapsedMs p50",
            "bare SQL p50 ms",
            "bare SQL p99 ms",
            "server/bare p50",
            "goal",
        ],
        rows,
        out,
    )
    print(
        f"\nGoal: server-side p50 < {GOALS['p50']:.0f} ms and p99 < {GOALS['p99']:.0f} ms.",
        file=out,
    )
    for line in verdicts:
        print(f"MISSED {line}", file=out)
    for variant, results in report.get("variants", {}).items():
        print(
            f"\nVariant '{variant}': the same calls after ALTER DATABASE ... SET "
            "plan_cache_mode = force_custom_plan (bridge restarted):\n",
            file=out,
        )
        default = {r["name"]: r for r in report["results"]}
        markdown_table(
            [
                "call",
                "server p50 ms",
                "server p99 ms",
                "default p50 ms",
                "default p99 ms",
                "bare SQL p50 ms",
                "goal",
            ],
            [
                [
                    r["name"],
                    r["server"]["p50"],
                    r["server"]["p99"],
                    default[r["name"]]["server"]["p50"],
                    default[r["name"]]["server"]["p99"],
                    r["bare"]["p50"],
                    "ok"
                    if r["server"]["p50"] < GOALS["p50"] and r["server"]["p99"] < GOALS["p99"]
                    else "MISSED",
                ]
                for r in results
            ],
            out,
        )
    if report["explain"]:
        print(
            "\nStatements per call (EXPLAIN ANALYZE execution time, custom / generic plan):",
            file=out,
        )
        for item in report["explain"]:
            print(f"\n{item['call']}:", file=out)
            for st in item["statements"]:
                print(
                    f"  {_execution_ms(st['custom']):8.2f} / {_execution_ms(st['generic']):8.2f} ms"
                    f"  {st['statement'][:100]}",
                    file=out,
                )
    print(f"\n{report['seconds']} s", file=out)


def write_plans(report: dict[str, Any], path: Path) -> None:
    with open(path, "w") as out:
        for item in report["explain"]:
            print(f"=== {item['call']}", file=out)
            for st in item["statements"]:
                print(f"\n--- {st['statement']}\n", file=out)
                print("custom plan:\n" + st["custom"], file=out)
                print("\ngeneric plan:\n" + st["generic"], file=out)
            print(file=out)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.queries", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a small data set, ~1 minute")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--requests", type=int, help="requests per call (200, quick 60)")
    parser.add_argument(
        "--no-variant",
        action="store_true",
        help="leave out the second pass with plan_cache_mode = force_custom_plan",
    )
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="FILE",
        help="write EXPLAIN (ANALYZE, BUFFERS) of every statement to FILE",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="measure only the calls whose name contains TEXT (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.requests is not None and not 1 <= args.requests <= 10_000:
        parser.error("--requests must be between 1 and 10000")
    install_interrupts()
    z = QUICK if args.quick else FULL
    status = 1
    with workdir("bridge-bench-queries-") as root:
        cluster = Cluster(root)
        try:
            log("starting Postgres")
            cluster.start()
            report = asyncio.run(run(args, z, cluster, root))
            if args.explain:
                write_plans(report, args.explain)
            if args.json:
                json.dump(report, sys.stdout, indent=2, default=str)
                print()
            else:
                print_report(report, sys.stdout)
            status = 0
        except KeyboardInterrupt:
            log("interrupted")
            status = 130
        except BenchError as exc:
            log(f"error: {exc}")
        finally:
            ignore_interrupts()
            cluster.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
