"""The REST API's own body limit, JSON-only bodies, and cookie tokens refused cross-site."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import FormData

from bridge.api.request_guard import origin_of
from bridge.config import ConfigError, parse_config
from bridge.db.database import Database
from tests.api.conftest import SECRET, TOKEN_NAME, Api, ApiServices, assert_error, hs_token, serve
from tests.api.routes import fill, rest_routes
from tests.conftest import config_data

CONV = "/messaging-api/v1/conversations"
APP_ORIGIN = "https://app.example.com"


@pytest.fixture
async def guarded(aiohttp_client: Any, db: Database, services: ApiServices) -> Api:
    """The API with a small body limit and one allowed origin."""
    config = parse_config(
        config_data(
            api={
                "token_name": TOKEN_NAME,
                "jwt": {"algorithm": "HS256", "secret": SECRET},
                "max_body_size": 4096,
                "allowed_origins": [APP_ORIGIN, "http://localhost:8080"],
            }
        )
    )
    return Api(await serve(aiohttp_client, config, db, services), db, services)


async def conversation_body(api: Api, user: uuid.UUID) -> dict[str, Any]:
    """A group of ``user`` (made a friend first: only connections go into a group) and two
    friends."""
    bob, cat = await api.friend("Bob"), await api.friend("Cat")
    return {"isGroup": True, "participantIds": [str(user), str(bob), str(cat)], "title": "t"}


# --- body size ------------------------------------------------------------------------------------


def test_default_body_limit_is_one_mebibyte() -> None:
    config = parse_config(config_data())
    assert config.api.max_body_size == 1024 * 1024
    assert config.api.allowed_origins == ()
    with pytest.raises(ConfigError, match=r"api\.max_body_size"):
        parse_config(config_data(api={"max_body_size": 0}))


async def test_body_over_the_limit_is_413(guarded: Api) -> None:
    ann = await guarded.friend("Ann")
    body = await conversation_body(guarded, ann)
    assert_error(*await guarded.call("POST", CONV, ann, json=body | {"title": "x" * 5000}), 413)
    status, created = await guarded.call("POST", CONV, ann, json=body)
    assert status == 201, created


async def test_declared_length_is_refused_before_the_body_is_read(guarded: Api) -> None:
    """A Content-Length over the limit is answered while the body is still being sent."""
    release = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"isGroup": true, '
        await release.wait()  # never sends the rest unless the test lets it
        yield b"}"

    token = hs_token(uuid.uuid4())
    try:
        async with asyncio.timeout(10):
            resp = await guarded.client.post(
                CONV,
                data=trickle(),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Content-Length": str(50 * 1024 * 1024),
                },
            )
            assert resp.status == 413
            assert_error(resp.status, await resp.json(), 413, "api.max_body_size")
    finally:
        release.set()


async def test_chunked_body_over_the_limit_is_413(guarded: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    token = hs_token(uuid.uuid4())
    resp = await guarded.client.post(
        CONV,
        data=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert_error(resp.status, await resp.json(), 413)


# --- JSON only ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # what a cross-site <form enctype="text/plain"> sends
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "application/json; charset=latin-1",
        "text/json",
    ],
)
async def test_a_body_must_be_declared_json(guarded: Api, content_type: str) -> None:
    ann = await guarded.friend("Ann")
    body = json.dumps(await conversation_body(guarded, ann))
    status, answer = await guarded.call(
        "POST", CONV, ann, data=body, headers={"Content-Type": content_type}
    )
    assert_error(
        status, answer, 415, "application/json" if "charset" not in content_type else "UTF-8"
    )
    async with guarded.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM conversation") == 0


async def test_multipart_and_missing_content_type_are_refused(guarded: Api) -> None:
    token = hs_token(uuid.uuid4())
    form = FormData()
    form.add_field("isGroup", "true")
    resp = await guarded.client.post(CONV, data=form, headers={"Authorization": f"Bearer {token}"})
    assert_error(resp.status, await resp.json(), 415)
    resp = await guarded.client.post(
        CONV, data=b"{}", headers={"Authorization": f"Bearer {token}", "Content-Type": ""}
    )
    assert_error(resp.status, await resp.json(), 415)


async def test_json_with_utf8_charset_and_bodiless_requests_pass(guarded: Api) -> None:
    ann = await guarded.friend("Ann")
    body = json.dumps(await conversation_body(guarded, ann))
    status, created = await guarded.call(
        "POST", CONV, ann, data=body, headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    assert status == 201, created
    # DELETE without a body needs no Content-Type.
    status, _ = await guarded.call("DELETE", f"{CONV}/{created['conversation']['id']}", ann)
    assert status in (200, 204)


# --- cookie tokens and cross-site requests --------------------------------------------------------


async def cookie_post(api: Api, headers: dict[str, str]) -> tuple[int, Any]:
    ann = await api.friend("Ann")
    body = await conversation_body(api, ann)
    token = hs_token(ann)
    resp = await api.client.post(
        CONV,
        json=body,
        headers={"Cookie": f"{TOKEN_NAME}={token}", **headers},
    )
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "https://app.example.com.evil.example"},
        {"Origin": "http://app.example.com"},  # another scheme is another origin
        {"Referer": "https://evil.example/page"},
        {"Referer": "not a url"},
    ],
)
async def test_cookie_token_needs_an_allowed_origin_on_unsafe_methods(
    guarded: Api, headers: dict[str, str]
) -> None:
    status, body = await cookie_post(guarded, headers)
    assert_error(status, body, 403, "cookie")
    async with guarded.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM conversation") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": APP_ORIGIN},
        {"Origin": "https://APP.example.com:443"},
        {"Referer": f"{APP_ORIGIN}/inbox?x=1"},
        {"Origin": "http://localhost:8080"},
    ],
)
async def test_cookie_token_from_an_allowed_origin_is_accepted(
    guarded: Api, headers: dict[str, str]
) -> None:
    status, body = await cookie_post(guarded, headers)
    assert status == 201, body


async def test_cookie_token_on_safe_methods_and_header_tokens_need_no_origin(guarded: Api) -> None:
    token = hs_token(uuid.uuid4())
    resp = await guarded.client.get(CONV, headers={"Cookie": f"{TOKEN_NAME}={token}"})
    assert resp.status == 200, await resp.text()
    # The Authorization header is something no cross-site form can set.
    ann = await guarded.friend("Ann")
    status, body = await guarded.call(
        "POST",
        CONV,
        ann,
        json=await conversation_body(guarded, ann),
        headers={"Origin": "https://evil.example"},
    )
    assert status == 201, body


async def test_cookie_token_refused_cross_site_on_every_unsafe_route(guarded: Api) -> None:
    token = hs_token(uuid.uuid4(), roles=["admin"])
    routes = [(m, p) for m, p in rest_routes(guarded.client.app) if m not in ("GET", "OPTIONS")]
    assert len(routes) >= 15  # every service's writes
    for method, template in routes:
        resp = await guarded.client.request(
            method,
            fill(template),
            json={},
            headers={"Cookie": f"{TOKEN_NAME}={token}", "Origin": "https://evil.example"},
        )
        assert resp.status == 403, (method, template, await resp.text())


def test_allowed_origins_config() -> None:
    config = parse_config(config_data(api={"allowed_origins": ["https://A.example:8443"]}))
    assert config.api.allowed_origins == ("https://a.example:8443",)
    for bad in (["https://a.example/"], ["https://a.example/path"], ["a.example"], "x", [1]):
        with pytest.raises(ConfigError, match=r"api\.allowed_origins"):
            parse_config(config_data(api={"allowed_origins": bad}))


def test_origin_of() -> None:
    assert origin_of("https://a.example") == "https://a.example"
    assert origin_of("https://a.example:443/x?y") == "https://a.example"
    assert origin_of("http://a.example:8080/") == "http://a.example:8080"
    assert origin_of("http://[::1]:8080/") == "http://[::1]:8080"
    for bad in ("null", "", "ftp://a.example", "/relative", "https://", "javascript:alert(1)"):
        assert origin_of(bad) is None


# --- bodies that are not JSON, or not storable -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"content": NaN}', "NaN"),
        (b'{"content": -Infinity}', "Infinity"),
        (b'{"content": "x", "n": 1e400}', "out of range"),
        (b'{"content": "x", "n": ' + b"9" * 5000 + b"}", "out of range"),
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b'{"content": "\xff"}', "UTF-8"),
        (b'{"content": "\xed\xa0\x80"}', "UTF-8"),  # a surrogate encoded in "UTF-8"
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"payload": ' + b"[" * 100 + b"]" * 100 + b"}", "deeper than 64"),
        (b'{"content": "a\\u0000b"}', "content holds U+0000"),
        (b'{"payload": {"a": ["x", "\\ud800"]}}', "payload.a[1] holds"),
        (b'{"media": [{"url": "\\udfff"}]}', "media[0].url holds"),
        (b'{"a\\u0000": 1}', "a key of the body"),
    ],
)
async def test_a_body_that_is_not_storable_json_is_400(
    api: Api, body: bytes, fragment: str
) -> None:
    ann = await api.friend("Ann")
    for path in ("/messaging-api/v1/messages", "/notification-api/notifications"):
        status, answer = await api.call(
            "POST", path, ann, data=body, headers={"Content-Type": "application/json"}
        )
        assert_error(status, answer, 400, fragment)


async def test_escaped_emoji_and_deep_enough_bodies_pass(guarded: Api) -> None:
    ann = await guarded.friend("Ann")
    body = await conversation_body(guarded, ann)
    body["title"] = "\ud83d\ude00"  # json.dumps escapes it as a valid surrogate pair
    status, created = await guarded.call("POST", CONV, ann, json=body)
    assert status == 201, created
    assert created["conversation"]["title"] == "\U0001f600"
