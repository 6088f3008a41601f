"""Generated hostile requests to every REST route (taken from the app's router) on a real
Postgres: never a 5xx, never a hang, always the reference's JSON bodies; afterwards every list
route still reads what was stored."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from bridge.db.database import Database
from tests.api.conftest import Api, ApiServices, api_config, hs_token, serve
from tests.api.conftest import db as db  # (the fixture)
from tests.api.conftest import services as services  # (the fixture)
from tests.api.routes import fill, rest_routes
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.strategies import SCALARS, TEXT, json_values

#: How long one request may take before it counts as a hang.
REQUEST_SECONDS = 15.0
FIELDS = [
    "afterMessageId",
    "content",
    "conversationId",
    "deletedFor",
    "deviceId",
    "formattedContent",
    "isGroup",
    "kind",
    "lastMessageAt",
    "media",
    "mentions",
    "message",
    "messageId",
    "msgtype",
    "participantIds",
    "payload",
    "readBy",
    "receiverUserId",
    "replyToMessageId",
    "senderUserId",
    "sentAt",
    "status",
    "title",
    "topic",
    "userId",
    "userIds",
    "connectionId",
    "token",
    "platform",
    "notificationIds",
    "body",
    "type",
]
QUERY = [
    "pageNumber",
    "pageRowCount",
    "sortBy",
    "status",
    "isGroup",
    "lastMessageAt",
    "sentAt",
    "afterMessageId",
    "userIds",
    "asUserId",
    "requestId",
    "page",
    "conversationId",
    "keyId",
]
RAW_BODIES = st.sampled_from(
    [
        b'{"content": NaN}',
        b'{"content": Infinity}',
        b'{"sentAt": 1e400}',
        b'{"content": "x", "n": ' + b"9" * 5000 + b"}",
        b"\xef\xbb\xbf{}",
        b'{"content": "\xff\xfe"}',
        b'{"content": "\\ud800"}',
        b'{"content": "\\u0000"}',
        b'{"payload": {"a": "\\u0000"}}',
        b'{"media": [{"url": "\\udfff"}]}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"payload": ' + b"[" * 500 + b"]" * 500 + b"}",
        b"{" * 3,
        b"",
        b"null",
    ]
)


@dataclass
class Known:
    """Ids that exist, so requests reach past the 404s."""

    users: list[uuid.UUID] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes | None
    content_type: str | None
    user: int  # index into the known users
    admin: bool


def _sendable(value: str) -> bool:
    """Whether the test client can put the value in a query string at all."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def requests(draw: st.DrawFn, routes: list[tuple[str, str]], known: Known) -> Request:
    method, template = draw(st.sampled_from(routes))
    ids = st.one_of(
        st.sampled_from(known.ids),
        st.builds(lambda: str(uuid.uuid4())),
        st.sampled_from([str(u) for u in known.users]),
    )
    param = draw(st.one_of(ids, TEXT.filter(bool)))
    path = fill(template, urllib.parse.quote(param, safe="", errors="surrogatepass"))
    query = draw(
        st.dictionaries(
            st.sampled_from(QUERY), st.one_of(ids, TEXT, st.integers().map(str)), max_size=3
        )
    )
    body: bytes | None
    kind = draw(st.sampled_from(["json", "json", "raw", "none"]))
    if kind == "json":
        value = draw(json_values(st.one_of(SCALARS, ids), st.one_of(st.sampled_from(FIELDS), TEXT)))
        body = json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif kind == "raw":
        body = draw(RAW_BODIES)
    else:
        body = None
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                None,
            ]
        )
    )
    return Request(
        method,
        path,
        {k: v for k, v in query.items() if _sendable(v)},
        body,
        content_type,
        draw(st.integers(0, len(known.users) - 1)),
        draw(st.booleans()),
    )


def answered(status: int) -> bool:
    """A 4xx, or success; or 503, which a route answers by design when what it needs is not
    configured (the pod certificate without a signing key, credentials without their key)."""
    return status < 500 or status == 503


@pytest.fixture
async def fuzz_api(
    aiohttp_client: Any, db: Database, services: ApiServices
) -> AsyncIterator[tuple[Api, Known]]:
    api = Api(await serve(aiohttp_client, api_config(), db, services), db, services)
    # Connected to each other: only connections go into a group.
    known = Known(users=[await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")])
    a, b, c = known.users
    status, body = await api.call(
        "POST",
        "/messaging-api/v1/conversations",
        a,
        json={"isGroup": True, "participantIds": [str(a), str(b), str(c)], "title": "t"},
    )
    assert status == 201, body
    conversation = body["conversation"]["id"]
    status, body = await api.call(
        "POST",
        "/messaging-api/v1/messages",
        a,
        json={"conversationId": conversation, "content": "hi"},
    )
    assert status == 201, body
    known.ids += [conversation, body["message"]["id"]]
    yield api, known
    await every_list_still_reads(api, known)  # after all the examples: what was stored reads


async def send(client: TestClient[Any, Any], request: Request, token: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    async with asyncio.timeout(REQUEST_SECONDS):
        resp = await client.request(
            request.method, request.path, params=request.query, data=request.body, headers=headers
        )
        return resp.status, await resp.text()


async def every_list_still_reads(api: Api, known: Known) -> None:
    for method, template in rest_routes(api.client.app):
        if method != "GET" or "{" in template:
            continue
        for user in known.users:
            status, text = await send(
                api.client, Request("GET", template, {}, None, None, 0, False), hs_token(user)
            )
            assert answered(status), (template, text)


@fuzz_settings(ci_examples=400)
@given(data=st.data())
async def test_hostile_requests_to_every_route_are_never_500(
    fuzz_api: tuple[Api, Known], data: st.DataObject
) -> None:
    api, known = fuzz_api
    routes = rest_routes(api.client.app)
    assert len(routes) >= 25
    request = data.draw(requests(routes, known))
    user = known.users[request.user]
    token = hs_token(user, **({"roles": ["admin"]} if request.admin else {}))
    status, text = await send(api.client, request, token)
    assert answered(status), (request.method, request.path, text)
    if status == 400 and not text.lstrip().startswith("{"):
        return  # the HTTP server's own plain-text 400 (a request line over 8 KiB), documented
    parsed = json.loads(text)  # every other answer is JSON: the envelope or an error body
    if status >= 400:  # each surface's own error body
        if request.path.startswith(("/pod", "/sessionauth")):
            assert parsed["code"] == status, parsed
        elif request.path.startswith("/v1/credentials"):
            assert parsed["status"] == status and parsed["title"], parsed  # RFC 9457
        elif request.path == "/auth-api/token" and "error" in parsed:
            assert parsed["error"], parsed  # RFC 6749
        else:
            assert parsed["result"] == "ERR" and parsed["status"] == status, parsed
