"""``pageNumber=0``: every row of a list, written as it is read.

Seed, common parameters: "pageNumber (Integer): For paginated get list API's, this parameter
selects which page of results to retrieve. The default is 1, indicating the first page. To
disable pagination and retrieve all results, set pageNumber to 0."
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from bridge.api.streaming import WHOLE_LISTS
from bridge.db.database import Database
from tests.api.conftest import Api, assert_error, hs_token
from tests.api.test_rest_messaging import direct, post

CONV = "/messaging-api/v1/conversations"
MSG = "/messaging-api/v1/messages"
CONN = "/networking-api/v1/connections"
REQ = "/networking-api/v1/connectionrequests"


async def insert_messages(
    db: Database, conversation: str, sender: uuid.UUID, count: int, *, size: int = 40
) -> None:
    """``count`` messages of ``size`` characters in one statement (1 ms apart, oldest first),
    the conversation's counter kept right."""
    async with db.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO message (id, conversation_id, sender_id, content, sent_at, origin)
            SELECT gen_random_uuid(), $1, $2, rpad('m' || n, $4, '.'),
                   now() - interval '1 day' + n * interval '1 ms', 'network'
            FROM generate_series(1, $3) AS n
            """,
            uuid.UUID(conversation),
            sender,
            count,
            size,
        )
        await conn.execute(
            "UPDATE conversation SET message_count = message_count + $2 WHERE id = $1",
            uuid.UUID(conversation),
            count,
        )


class Key(msgspec.Struct):
    id: uuid.UUID


class Paging(msgspec.Struct):
    pageNumber: int | None
    pageRowCount: int
    totalRowCount: int
    pageCount: int
    nextCursor: str | None


class MessagesBody(msgspec.Struct):
    """What the 100,000-row test checks of the body (decoded without the rest)."""

    status: str
    dataName: str
    rowCount: int
    messages: list[Key]
    paging: Paging
    filters: list[Any]


async def download(api: Api, path: str, user: uuid.UUID, params: dict[str, str], to: Path) -> Any:
    """GET into a file, chunk by chunk (the client holds no more than a chunk)."""
    token = hs_token(user)
    resp = await api.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    with to.open("wb") as out:
        async for chunk in resp.content.iter_chunked(1 << 16):
            out.write(chunk)
    return resp


async def test_one_hundred_thousand_messages_with_flat_memory(api: Api, tmp_path: Path) -> None:
    """Seed: "To disable pagination and retrieve all results, set pageNumber to 0." Every one
    of 100,000 messages comes, in order, in the seed's envelope, and the process's traced
    memory during the request stays a small fraction of the body: building the list (or the
    body) in memory would take more than the whole body."""
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    conversation = (await direct(api, ann, bob))["id"]
    await insert_messages(api.db, conversation, ann, 100_000)
    params = {"conversationId": conversation, "pageNumber": "0"}
    body_file = tmp_path / "body.json"
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await download(api, MSG, bob, params, body_file)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = body_file.stat().st_size
    growth = peak - before
    print(f"body {size / 2**20:.1f} MiB, traced peak growth {growth / 2**20:.2f} MiB")
    assert size > 20 * 2**20  # the ceiling below is meaningful against this
    assert growth < size / 8, (growth, size)
    body = msgspec.json.decode(body_file.read_bytes(), type=MessagesBody)
    assert body.status == "OK" and body.dataName == "messages"
    assert body.rowCount == 100_000 == len(body.messages)
    assert body.paging == Paging(0, 100_000, 100_000, 1, None)
    assert body.filters == [{"name": "conversationId", "values": [conversation]}]
    async with api.db.acquire() as conn:
        ordered = await conn.fetch(
            "SELECT id FROM message WHERE conversation_id = $1 ORDER BY sent_at, id",
            uuid.UUID(conversation),
        )
    assert [m.id for m in body.messages] == [r["id"] for r in ordered]


async def paged(api: Api, path: str, user: uuid.UUID, data: str, **params: str) -> list[Any]:
    """Every row, page by page (the reference's paging)."""
    rows: list[Any] = []
    number = 1
    while True:
        status, body = await api.call(
            "GET", path, user, params={**params, "pageNumber": str(number), "pageRowCount": "7"}
        )
        assert status == 200, body
        rows += body[data]
        if number >= body["paging"]["pageCount"]:
            return rows
        number += 1


async def test_every_list_taking_page_number(api: Api) -> None:
    """Seed: "To disable pagination and retrieve all results, set pageNumber to 0." On each list
    that pages (conversations, messages, connections, connection requests), with and without
    filters: the rows paging would give, in one page, in the envelope."""
    ann = await api.friend("Ann")
    others = [await api.friend(f"Friend {n}") for n in range(12)]
    strangers = [await api.person(f"Stranger {n}") for n in range(9)]
    conversations = [(await direct(api, ann, other))["id"] for other in others[:10]]
    for n, conversation in enumerate(conversations[:4]):
        for m in range(n + 3):
            await post(api, ann if m % 2 else others[n], conversation, f"{n}/{m}")
    for stranger in strangers[:6]:
        await api.call("POST", REQ, ann, json={"receiverUserId": str(stranger)})
    for stranger in strangers[6:]:
        _, asked = await api.call("POST", REQ, stranger, json={"receiverUserId": str(ann)})
        await api.call("DELETE", f"{REQ}/{asked['connectionRequest']['id']}", ann)
    cases: list[tuple[str, str, dict[str, str]]] = [
        (CONV, "conversations", {}),
        (CONV, "conversations", {"isGroup": "false", "participantIds": str(others[2])}),
        (MSG, "messages", {}),
        (MSG, "messages", {"conversationId": conversations[3]}),
        (MSG, "messages", {"senderUserId": str(ann)}),
        (MSG, "messages", {"unreadBy": str(ann)}),
        (CONN, "connections", {}),
        (REQ, "connectionRequests", {}),
        (REQ, "connectionRequests", {"status": "rejected"}),
    ]
    for path, data, params in cases:
        expected = await paged(api, path, ann, data, **params)
        assert expected, (path, params)
        resp = await api.client.get(
            path,
            params={**params, "pageNumber": "0"},
            headers={"Authorization": f"Bearer {hs_token(ann)}"},
        )
        assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.content_type == "application/json"
        body = await resp.json()
        assert body[data] == expected, (path, params)
        total = len(expected)
        assert body["rowCount"] == total and body["dataName"] == data
        cursors = {"nextCursor": None} if path in (CONV, MSG) else {}  # nothing follows
        assert body["paging"] == {
            "pageNumber": 0, "pageRowCount": total, "totalRowCount": total, "pageCount": 1,
            **cursors,
        }  # fmt: skip
        assert [f["name"] for f in body["filters"]] == list(params)
        assert list(body)[-3:] == ["paging", "filters", "uiPermissions"]
        assert list(body)[list(body).index("rowCount") + 1] == data
    status, body = await api.call("GET", MSG, strangers[0], params={"pageNumber": "0"})
    assert status == 200 and body["rowCount"] == 0 == len(body["messages"])
    assert body["paging"] == {
        "pageNumber": 0, "pageRowCount": 0, "totalRowCount": 0, "pageCount": 0, "nextCursor": None,
    }  # fmt: skip


async def test_refusals_come_before_the_first_byte(api: Api) -> None:
    """Seed: "To disable pagination and retrieve all results, set pageNumber to 0." — and its
    error response ("If a request encounters an issue ... the service responds with a
    standardized JSON error structure"), which a whole list still gets for every refusal."""
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    eve = await api.person("Eve")
    conversation = (await direct(api, ann, bob))["id"]
    message = await post(api, ann, conversation, "hello")
    every = {"pageNumber": "0"}
    status, body = await api.call("GET", MSG, eve, params={**every, "conversationId": conversation})
    assert_error(status, body, 403)
    status, body = await api.call(
        "GET", MSG, ann, params={**every, "conversationId": str(uuid.uuid4())}
    )
    assert_error(status, body, 404)
    status, body = await api.call(
        "GET", MSG, eve, params={**every, "afterMessageId": message["id"]}
    )
    assert_error(status, body, 403)
    status, body = await api.call("GET", MSG, ann, params={**every, "unreadBy": str(bob)})
    assert_error(status, body, 403, "unreadBy")
    status, body = await api.call("GET", CONV, ann, params={**every, "cursor": "x"})
    assert_error(status, body, 400, "cursor")
    status, body = await api.call("GET", REQ, ann, params={**every, "status": "lost"})
    assert_error(status, body, 400, "status")
    resp = await api.client.get(CONN, params=every)
    assert_error(resp.status, await resp.json(), 401)


async def test_whole_lists_written_at_once_are_bounded(api: Api) -> None:
    """Each whole list holds a pooled connection while its client reads: past
    ``api.whole_lists`` at once, one more is refused with 503 before anything is read (pages are
    still served), and is served again once one has ended."""
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    await post(api, ann, (await direct(api, ann, bob))["id"], "hello")
    gate = api.client.app[WHOLE_LISTS]
    with ExitStack() as writing:
        for _ in range(gate.limit):
            writing.enter_context(gate.slot())
        for path in (CONV, MSG, CONN, REQ):
            status, body = await api.call("GET", path, ann, params={"pageNumber": "0"})
            assert_error(status, body, 503, "api.whole_lists")
        status, body = await api.call("GET", CONV, ann, params={"pageNumber": "1"})
        assert status == 200 and body["rowCount"] == 1
    status, body = await api.call("GET", CONV, ann, params={"pageNumber": "0"})
    assert status == 200 and body["rowCount"] == 1


async def test_a_database_failure_mid_list_cuts_the_body_short(api: Api) -> None:
    """Seed: "To disable pagination and retrieve all results, set pageNumber to 0." Once the
    list has started, a failure cannot become an error status: the connection is cut before the
    body's end, so the client sees a transfer that did not finish and a body that is not JSON,
    never a shorter list that parses."""
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    conversation = (await direct(api, ann, bob))["id"]
    # Far more than the socket buffers hold: the server is still reading when the client stalls.
    await insert_messages(api.db, conversation, ann, 15_000, size=2000)
    resp = await api.client.get(
        MSG,
        params={"conversationId": conversation, "pageNumber": "0"},
        headers={"Authorization": f"Bearer {hs_token(ann)}"},
    )
    assert resp.status == 200
    received = await resp.content.readexactly(1 << 16)
    assert received.startswith(b'{"status":"OK"')
    async with api.db.acquire() as conn:
        deadline = time.monotonic() + 20
        while True:  # the list's transaction, waiting for the client to read on
            killed = await conn.fetchval(
                """
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND state = 'idle in transaction'
                """
            )
            if killed or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert killed == 1
    with pytest.raises(aiohttp.ClientPayloadError):
        while chunk := await resp.content.read(1 << 16):
            received += chunk
    with pytest.raises(json.JSONDecodeError):
        json.loads(received)
    assert len(received) < 15_000 * 2000
    status, _ = await api.call("GET", CONV, ann)  # the pool gave up the dead connection
    assert status == 200
