"""Hostile transactions and queries: a 400 for what is not JSON, a dead letter for a bad event,
never a 500 (which makes the homeserver resend the same transaction forever)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bridge.appservice.transaction import MAX_ORIGIN_SERVER_TS, parse_transaction
from bridge.matrix.ids import MatrixIds
from bridge.strict_json import MAX_DEPTH, nesting_depth, storable
from tests.appservice.test_api import AUTH, TXN, assert_error, inbox_ids, message
from tests.appservice.test_api import client as client  # (the fixture)


def body_with(*raw_events: str, extra: str = "") -> bytes:
    return ('{"events":[' + ",".join(raw_events) + "]" + extra + "}").encode()


async def dead_letters(conn: asyncpg.Connection) -> dict[str | None, tuple[str, Any]]:
    rows = await conn.fetch("SELECT event_id, error, payload FROM dead_letter")
    return {r["event_id"]: (r["error"], json.loads(r["payload"])) for r in rows}


# --- bodies that are not JSON -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (body_with(json.dumps(message(1))[:-1] + ',"n":NaN}'), "NaN"),
        (body_with(json.dumps(message(1))[:-1] + ',"n":Infinity}'), "Infinity"),
        (body_with(json.dumps(message(1))[:-1] + ',"n":-Infinity}'), "Infinity"),
        (b"\xef\xbb\xbf" + body_with(json.dumps(message(1))), "byte-order mark"),
        (json.dumps({"events": [message(1)]}).encode("utf-16"), "UTF-8"),
        (json.dumps({"events": [message(1)]}).encode("utf-32-le"), "not JSON"),
        (b'{"events":[' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "nested too deeply"),
        (b'{"events":[], "x": "\xed\xa0\x80"}', "UTF-8"),  # a surrogate encoded in "UTF-8"
        (b'{"events":[]', "line 1"),
    ],
)
async def test_a_body_that_is_not_rfc_8259_json_is_400_not_json(
    client: TestClient, conn: asyncpg.Connection, body: bytes, fragment: str
) -> None:
    resp = await client.put(f"{TXN}/bad", data=body, headers=AUTH)
    await assert_error(resp, 400, "M_NOT_JSON")
    assert fragment in (await resp.json())["error"]
    assert await conn.fetchval("SELECT count(*) FROM inbox") == 0
    assert await conn.fetchval("SELECT count(*) FROM appservice_txn") == 0


async def test_ping_with_nan_is_400(client: TestClient) -> None:
    resp = await client.post("/_matrix/app/v1/ping", data=b'{"transaction_id": NaN}', headers=AUTH)
    await assert_error(resp, 400, "M_NOT_JSON")


# --- events that only hold something bad --------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["1e400", "-1e400", "1E+999999", "1e-400", "1" * 5000, "-" + "9" * 400]
)
async def test_a_number_out_of_range_dead_letters_its_event_alone(
    client: TestClient, conn: asyncpg.Connection, number: str
) -> None:
    bad = json.dumps(message(1))[:-1] + f',"content":{{"body":"x","n":{number}}}}}'
    resp = await client.put(f"{TXN}/num", data=body_with(bad, json.dumps(message(2))), headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert await inbox_ids(conn) == ["$event2"]
    error, payload = (await dead_letters(conn))["$event1"]
    assert error == "event holds a number out of range (beyond a double)"
    assert payload["content"] == {"body": "x", "n": "<number out of range>"}


async def test_a_number_out_of_range_outside_the_events_changes_nothing(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    body = body_with(json.dumps(message(1)), extra=',"x.unknown":1e400')
    resp = await client.put(f"{TXN}/outside", data=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert await inbox_ids(conn) == ["$event1"]
    assert await conn.fetchval("SELECT count(*) FROM dead_letter") == 0


async def test_an_ephemeral_event_out_of_range_is_dead_lettered(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    receipt = '{"type":"m.receipt","room_id":"!r:localhost","content":{"ts":1e400}}'
    resp = await client.put(
        f"{TXN}/edu", data=body_with(extra=f',"ephemeral":[{receipt}]'), headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    ((error, payload),) = (await dead_letters(conn)).values()
    assert "out of range" in error and payload["content"]["ts"] == "<number out of range>"


async def test_an_event_nested_too_deeply_is_dead_lettered_alone(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    levels = 300  # more than an event may have, less than the parser can read
    deep = (
        json.dumps(message(1))[:-1]
        + ',"content":{"body":"x","d":'
        + "[" * levels
        + "]" * levels
        + "}}"
    )
    resp = await client.put(
        f"{TXN}/deep", data=body_with(deep, json.dumps(message(2))), headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    assert await inbox_ids(conn) == ["$event2"]
    error, payload = (await dead_letters(conn))["$event1"]
    assert error == f"event nests deeper than {MAX_DEPTH} levels"
    assert payload["event_id"] == "$event1"  # the dead letter holds the event, cut at the limit
    assert "<nested too deeply>" in json.dumps(payload)


async def test_an_event_at_the_depth_limit_is_taken(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    inner = MAX_DEPTH - 2  # the event object and its content are two levels
    event = message(1) | {"content": {"body": "x", "d": json.loads("[" * inner + "]" * inner)}}
    resp = await client.put(f"{TXN}/limit", json={"events": [event]}, headers=AUTH)
    assert resp.status == 200
    assert await inbox_ids(conn) == ["$event1"]


@pytest.mark.parametrize(
    ("ts", "fragment"),
    [
        (10**15, "out of range"),
        (10**300, "out of range"),
        (-1, "out of range"),
        (MAX_ORIGIN_SERVER_TS + 1, "out of range"),
        (1.5e12, "integer"),
        ("1700000000000", "integer"),
        (True, "integer"),
    ],
)
async def test_an_absurd_origin_server_ts_is_refused_once_at_intake(
    client: TestClient, conn: asyncpg.Connection, ts: Any, fragment: str
) -> None:
    bad = message(1) | {"origin_server_ts": ts}
    resp = await client.put(f"{TXN}/ts", json={"events": [bad, message(2)]}, headers=AUTH)
    assert resp.status == 200
    assert await inbox_ids(conn) == ["$event2"]
    row = await conn.fetchrow("SELECT error, attempts FROM dead_letter WHERE event_id = '$event1'")
    assert fragment in row["error"] and "origin_server_ts" in row["error"]
    assert len(row["error"]) < 100


async def test_the_latest_representable_timestamp_is_taken(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    event = message(1) | {"origin_server_ts": MAX_ORIGIN_SERVER_TS}
    resp = await client.put(f"{TXN}/max", json={"events": [event]}, headers=AUTH)
    assert resp.status == 200
    assert await inbox_ids(conn) == ["$event1"]


async def test_a_resent_bad_transaction_stores_each_dead_letter_once(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    bad = json.dumps(message(1))[:-1] + ',"n":1e999}'
    body = body_with(bad, json.dumps(message(2)))
    for _ in range(3):
        resp = await client.put(f"{TXN}/again", data=body, headers=AUTH)
        assert resp.status == 200
    assert await conn.fetchval("SELECT count(*) FROM dead_letter") == 1
    assert await inbox_ids(conn) == ["$event2"]


def test_parsing_never_leaks_a_python_only_value() -> None:
    """Whatever is taken goes to jsonb as it came; whatever is refused is storable."""
    body = body_with(
        json.dumps(message(1))[:-1] + ',"n":1e400}',
        json.dumps(message(2)),
        json.dumps(message(3))[:-1] + ',"s":"\\u0000"}',
    )
    parsed = parse_transaction("t", body)
    assert parsed.body_text is None  # the events are serialised one by one
    assert [e.event_id for e in parsed.events] == ["$event2"]
    for rejected in parsed.rejected:
        assert "Infinity" not in rejected.json and "\\u0000" not in rejected.json
        json.loads(rejected.json)


def test_nesting_depth_counts_brackets_outside_strings() -> None:
    assert nesting_depth('{"a": "[[[[", "b": [1, {"c": []}]}', 10) == 4
    assert nesting_depth('"\\"[["', 10) == 0
    assert nesting_depth("[" * 50 + "]" * 50, 10) == 11  # stops counting past the limit
    assert storable({"a": [[[1]]]}, limit=2) == {"a": ["<nested too deeply>"]}


# --- queries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "name=a%00b",
        "name=" + "x" * 300,
        "userid=%00",
        "na%00me=x",
    ],
)
async def test_third_party_lookup_with_control_characters_is_400(
    client: TestClient, query: str
) -> None:
    resp = await client.get(
        f"/_matrix/app/v1/thirdparty/user/professional-network?{query}", headers=AUTH
    )
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["errcode"] in ("M_INVALID_PARAM", "M_NOT_JSON", "M_BAD_JSON")


async def test_third_party_lookup_with_undecodable_bytes_is_answered(client: TestClient) -> None:
    resp = await client.get(
        "/_matrix/app/v1/thirdparty/user/professional-network?name=%ED%A0%80%FF", headers=AUTH
    )  # a surrogate and a byte that are not UTF-8: decoded with replacement characters
    assert resp.status == 200
    assert await resp.json() == []


async def test_lookup_by_mxid_or_alias_with_a_nul_is_400(client: TestClient) -> None:
    resp = await client.get("/_matrix/app/v1/thirdparty/user?userid=@a%00:localhost", headers=AUTH)
    await assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await client.get(
        "/_matrix/app/v1/thirdparty/location?alias=%23a%00:localhost", headers=AUTH
    )
    await assert_error(resp, 400, "M_INVALID_PARAM")


GHOST = "@_pn_0b6f7a1e-1234-4cde-8f00-123456789abc:localhost"
ALIAS = "#_pn_conv_0b6f7a1e-1234-4cde-8f00-123456789abc:localhost"


async def test_ids_with_a_trailing_newline_are_not_the_bridges(client: TestClient) -> None:
    resp = await client.get(f"/_matrix/app/v1/users/{GHOST}%0A", headers=AUTH)
    await assert_error(resp, 404, "M_NOT_FOUND")
    resp = await client.get(
        "/_matrix/app/v1/rooms/" + ALIAS.replace("#", "%23") + "%0A", headers=AUTH
    )
    await assert_error(resp, 404, "M_NOT_FOUND")
    resp = await client.get(f"/_matrix/app/v1/thirdparty/user?userid={GHOST}%0A", headers=AUTH)
    assert resp.status in (200, 400) and (resp.status == 400 or await resp.json() == [])
    resp = await client.put(f"{TXN}/abc%0A", json={"events": []}, headers=AUTH)
    await assert_error(resp, 400, "M_BAD_JSON")


def test_ghost_and_alias_patterns_match_the_whole_id(config: Any) -> None:
    ids = MatrixIds(config)
    assert ids.network_user_of(GHOST) is not None
    assert ids.network_user_of(GHOST + "\n") is None
    assert ids.conversation_of(ALIAS) is not None
    assert ids.conversation_of(ALIAS + "\n") is None
    assert not ids.is_bridged(GHOST + "\n")
