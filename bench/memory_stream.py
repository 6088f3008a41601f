"""The memory benchmark's second part: a whole list (``pageNumber=0``) of 100,000 messages.

Against the running daemon of ``bench.memory``: two network users (created by their first REST
call, HS256 tokens) and a 1:1 conversation (created over REST by one of them, an administrator),
then the messages inserted with one SQL statement. Measured from ``/proc/<pid>/status`` of the
daemon's Python process, its peak (``VmHWM``) reset before each step (``/proc/<pid>/clear_refs``
``5``): idle; the reference, three 1,000-row pages (``pageNumber=1..3&pageRowCount=1000``); then
the whole list of every message, read chunk by chunk. The body is checked (every message, in
order, ``rowCount`` and ``paging`` right).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt
import msgspec

from bench.common import HOST, BenchError, log

JWT_SECRET = "bench-jwt-secret-of-at-least-32-bytes!"
MSG = "/messaging-api/v1/messages"


class _Key(msgspec.Struct):
    id: uuid.UUID


class _Body(msgspec.Struct):
    rowCount: int
    messages: list[_Key]
    paging: dict[str, Any]


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current resident set (Linux 4.0+)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _token(user: uuid.UUID, *, admin: bool = False) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(user), "iat": now, "exp": now + 3600}
    if admin:
        claims["roles"] = ["admin"]
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


async def _setup(session: aiohttp.ClientSession, base: str, dsn: str, rows: int) -> tuple[str, str]:
    """A conversation of ``rows`` messages; (its id, a participant's token)."""
    ann, bob = uuid.uuid4(), uuid.uuid4()
    ann_token = _token(ann, admin=True)
    for user, token in ((ann, ann_token), (bob, _token(bob))):
        async with session.get(
            f"{base}/messaging-api/currentuser", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            if resp.status != 200:
                raise BenchError(f"currentuser for {user}: HTTP {resp.status}")
    async with session.post(
        f"{base}/messaging-api/v1/conversations",
        json={"isGroup": False, "participantIds": [str(ann), str(bob)]},
        headers={"Authorization": f"Bearer {ann_token}"},
    ) as resp:
        if resp.status != 201:
            raise BenchError(f"create conversation: HTTP {resp.status} {await resp.text()}")
        conversation = (await resp.json())["conversation"]["id"]
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                """
                INSERT INTO message (id, conversation_id, sender_id, content, sent_at, origin)
                SELECT gen_random_uuid(), $1, $2, rpad('message ' || n, 50 + n % 151, '.'),
                       now() - interval '1 day' + n * interval '1 ms', 'network'
                FROM generate_series(1, $3) AS n
                """,
                uuid.UUID(conversation),
                bob,
                rows,
            )
            await conn.execute(
                "UPDATE conversation SET message_count = message_count + $2 WHERE id = $1",
                uuid.UUID(conversation),
                rows,
            )
        await conn.execute("VACUUM ANALYZE message")
    finally:
        await conn.close()
    return conversation, ann_token


async def measure_stream(pid: int, port: int, dsn: str, rows: int) -> dict[str, Any]:
    """Idle, three 1,000-row pages, and the whole list of ``rows`` messages: the daemon's
    VmRSS and peak (reset before each)."""
    base = f"http://{HOST}:{port}"
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        log(f"whole list: inserting {rows:,} messages")
        conversation, token = await _setup(session, base, dsn, rows)
        headers = {"Authorization": f"Bearer {token}"}
        resettable = _reset_peak(pid)
        idle = proc_status(pid)
        steps: list[dict[str, Any]] = [{"step": "idle", **idle}]
        _reset_peak(pid)
        started = time.monotonic()
        for number in (1, 2, 3):
            params = {"conversationId": conversation, "pageNumber": str(number),
                      "pageRowCount": "1000"}  # fmt: skip
            async with session.get(base + MSG, params=params, headers=headers) as resp:
                page = await resp.read()
                if resp.status != 200:
                    raise BenchError(f"page {number}: HTTP {resp.status}")
        seconds = time.monotonic() - started
        steps.append(
            {"step": "three 1,000-row pages", **proc_status(pid), "seconds": seconds,
             "body_mib": len(page) / 2**20}
        )  # fmt: skip
        _reset_peak(pid)
        started = time.monotonic()
        params = {"conversationId": conversation, "pageNumber": "0"}
        body = bytearray()
        async with session.get(base + MSG, params=params, headers=headers) as resp:
            if resp.status != 200:
                raise BenchError(f"pageNumber=0: HTTP {resp.status}")
            chunked = resp.headers.get("Transfer-Encoding") == "chunked"
            async for chunk in resp.content.iter_chunked(1 << 16):
                body += chunk
        seconds = time.monotonic() - started
        steps.append(
            {"step": f"pageNumber=0, {rows:,} messages", **proc_status(pid), "seconds": seconds,
             "body_mib": len(body) / 2**20}
        )  # fmt: skip
    decoded = msgspec.json.decode(bytes(body), type=_Body)
    conn = await asyncpg.connect(dsn)
    try:
        ordered = await conn.fetch(
            "SELECT id FROM message WHERE conversation_id = $1 ORDER BY sent_at, id",
            uuid.UUID(conversation),
        )
    finally:
        await conn.close()
    ok = (
        chunked
        and decoded.rowCount == rows
        and decoded.paging["totalRowCount"] == rows
        and [m.id for m in decoded.messages] == [r["id"] for r in ordered]
    )
    return {"rows": rows, "peak_reset": resettable, "steps": steps, "checked": ok}


def print_stream(report: dict[str, Any], out: Any, table: Any) -> None:
    """The whole list's part of the report."""
    steps = report["steps"]
    print(f"\nWhole list (pageNumber=0) of {report['rows']:,} messages, same daemon:\n", file=out)
    table(
        ["step", "VmRSS MiB", "peak (VmHWM) MiB", "body MiB", "seconds"],
        [
            [
                s["step"],
                f"{s['VmRSS']:.1f}",
                f"{s['VmHWM']:.1f}",
                f"{s['body_mib']:.1f}" if "body_mib" in s else "",
                f"{s['seconds']:.2f}" if "seconds" in s else "",
            ]
            for s in steps
        ],
        out,
    )
    idle, pages, whole = steps
    if not report["peak_reset"]:
        print("(VmHWM could not be reset: peaks are since the daemon started)", file=out)
    print(
        f"\npeak streaming {report['rows']:,} messages: {whole['VmHWM']:.1f} MiB, "
        f"{whole['VmHWM'] - pages['VmHWM']:+.1f} MiB vs three 1,000-row pages, "
        f"{whole['VmHWM'] - idle['VmRSS']:+.1f} MiB vs idle; body {whole['body_mib']:.1f} MiB; "
        f"check (every message, in order, envelope): {'ok' if report['checked'] else 'FAILED'}",
        file=out,
    )
