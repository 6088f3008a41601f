"""The homeserver-facing API over real HTTP, storing into a real Postgres."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bridge.app import init_app
from bridge.config import Config
from tests.conftest import HS_TOKEN

AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}
TXN = "/_matrix/app/v1/transactions"


def message(n: int, room: str = "!room:localhost") -> dict[str, Any]:
    return {
        "event_id": f"$event{n}",
        "type": "m.room.message",
        "room_id": room,
        "sender": "@alice:localhost",
        "origin_server_ts": 1700000000000 + n,
        "content": {"msgtype": "m.text", "body": f"hello {n}"},
    }


@pytest.fixture
async def client(config: Config, dsn: str, aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(await init_app(config, dsn))


async def inbox_ids(conn: asyncpg.Connection) -> list[str]:
    return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox ORDER BY id")]


async def assert_error(resp: Any, status: int, errcode: str) -> None:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["errcode"] == errcode
    assert isinstance(body["error"], str) and body["error"]


# --- auth -------------------------------------------------------------------------------------


async def test_missing_token_is_401(client: TestClient) -> None:
    resp = await client.put(f"{TXN}/1", json={"events": []})
    await assert_error(resp, 401, "M_UNAUTHORIZED")


async def test_non_bearer_scheme_counts_as_missing(client: TestClient) -> None:
    resp = await client.put(
        f"{TXN}/1", json={"events": []}, headers={"Authorization": f"Basic {HS_TOKEN}"}
    )
    await assert_error(resp, 401, "M_UNAUTHORIZED")


async def test_wrong_bearer_is_403(client: TestClient) -> None:
    resp = await client.put(
        f"{TXN}/1", json={"events": []}, headers={"Authorization": "Bearer nope"}
    )
    await assert_error(resp, 403, "M_FORBIDDEN")


async def test_wrong_query_token_is_403(client: TestClient) -> None:
    resp = await client.put(f"{TXN}/1?access_token=nope", json={"events": []})
    await assert_error(resp, 403, "M_FORBIDDEN")


async def test_query_token_alone_is_accepted(client: TestClient) -> None:
    resp = await client.put(f"{TXN}/1?access_token={HS_TOKEN}", json={"events": []})
    assert resp.status == 200
    assert await resp.json() == {}


async def test_header_and_query_must_agree(client: TestClient) -> None:
    resp = await client.put(f"{TXN}/1?access_token=nope", json={"events": []}, headers=AUTH)
    await assert_error(resp, 403, "M_FORBIDDEN")
    resp = await client.put(
        f"{TXN}/1?access_token={HS_TOKEN}",
        json={"events": []},
        headers={"Authorization": "Bearer nope"},
    )
    await assert_error(resp, 403, "M_FORBIDDEN")
    resp = await client.put(f"{TXN}/1?access_token={HS_TOKEN}", json={"events": []}, headers=AUTH)
    assert resp.status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_matrix/app/v1/users/@_pn_x:localhost"),
        ("GET", "/_matrix/app/v1/rooms/%23_pn_conv_x:localhost"),
        ("POST", "/_matrix/app/v1/ping"),
        ("GET", "/_matrix/app/v1/thirdparty/protocol/professional-network"),
        ("GET", "/_matrix/app/v1/thirdparty/user/professional-network"),
        ("GET", "/_matrix/app/v1/thirdparty/location/professional-network"),
        ("GET", "/_matrix/app/v1/thirdparty/user?userid=@a:localhost"),
        ("GET", "/_matrix/app/v1/thirdparty/location?alias=%23a:localhost"),
        ("PUT", "/transactions/1"),
        ("GET", "/users/@_pn_x:localhost"),
        ("GET", "/rooms/%23_pn_conv_x:localhost"),
    ],
)
async def test_every_route_needs_the_token(client: TestClient, method: str, path: str) -> None:
    resp = await client.request(method, path, json={})
    await assert_error(resp, 401, "M_UNAUTHORIZED")
    resp = await client.request(method, path, json={}, headers={"Authorization": "Bearer x"})
    await assert_error(resp, 403, "M_FORBIDDEN")


# --- routing and bodies -----------------------------------------------------------------------


async def test_unknown_route_is_404_unrecognized(client: TestClient) -> None:
    resp = await client.get("/_matrix/app/v1/nothing", headers=AUTH)
    await assert_error(resp, 404, "M_UNRECOGNIZED")


async def test_wrong_method_is_405_unrecognized(client: TestClient) -> None:
    resp = await client.get(f"{TXN}/1", headers=AUTH)
    await assert_error(resp, 405, "M_UNRECOGNIZED")


async def test_invalid_json_is_not_json(client: TestClient, conn: asyncpg.Connection) -> None:
    resp = await client.put(f"{TXN}/1", data=b"{not json", headers=AUTH)
    await assert_error(resp, 400, "M_NOT_JSON")
    resp = await client.put(f"{TXN}/1", data=b"\xff\xfe", headers=AUTH)
    await assert_error(resp, 400, "M_NOT_JSON")
    assert await conn.fetchval("SELECT count(*) FROM appservice_txn") == 0


@pytest.mark.parametrize(
    "body",
    [[], "text", {}, {"events": {}}, {"events": None}, {"events": [], "ephemeral": {}}],
)
async def test_wrong_shape_is_bad_json(client: TestClient, body: Any) -> None:
    resp = await client.put(f"{TXN}/1", data=json.dumps(body), headers=AUTH)
    await assert_error(resp, 400, "M_BAD_JSON")


async def test_oversized_body_is_413(client: TestClient, conn: asyncpg.Connection) -> None:
    big = {"events": [message(1) | {"content": {"body": "x" * (1024 * 1024)}}]}
    resp = await client.put(f"{TXN}/1", json=big, headers=AUTH)
    await assert_error(resp, 413, "M_TOO_LARGE")
    assert await inbox_ids(conn) == []


async def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    resp = await client.put(f"{TXN}/1", data=chunks(), headers=AUTH)
    await assert_error(resp, 413, "M_TOO_LARGE")


# --- durable intake ---------------------------------------------------------------------------


async def test_transaction_is_stored_before_200(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    events = [message(1), message(2, "!other:localhost"), message(3)]
    resp = await client.put(f"{TXN}/txn1", json={"events": events}, headers=AUTH)
    assert resp.status == 200
    rows = await conn.fetch(
        "SELECT event_id, lane, kind, event_type, sender, event FROM inbox ORDER BY id"
    )
    assert [r["event_id"] for r in rows] == ["$event1", "$event2", "$event3"]
    assert [r["lane"] for r in rows] == ["!room:localhost", "!other:localhost", "!room:localhost"]
    assert {r["kind"] for r in rows} == {"pdu"}
    assert json.loads(rows[0]["event"])["content"]["body"] == "hello 1"
    txn = await conn.fetchrow("SELECT txn_id, event_count FROM appservice_txn")
    assert (txn["txn_id"], txn["event_count"]) == ("txn1", 3)


async def test_same_transaction_twice_stores_once(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    body = {
        "events": [message(1), message(2)],
        "ephemeral": [
            {"type": "m.typing", "room_id": "!room:localhost", "content": {"user_ids": []}}
        ],
    }
    for _ in range(2):
        resp = await client.put(f"{TXN}/7", json=body, headers=AUTH)
        assert resp.status == 200
    assert await conn.fetchval("SELECT count(*) FROM inbox") == 3
    assert await conn.fetchval("SELECT count(*) FROM appservice_txn") == 1


async def test_same_events_under_new_txn_id_store_once(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    resp = await client.put(f"{TXN}/1", json={"events": [message(1), message(2)]}, headers=AUTH)
    assert resp.status == 200
    # As after a Synapse restart on SQLite: ids start again, events partly the same.
    resp = await client.put(f"{TXN}/1", json={"events": [message(2), message(3)]}, headers=AUTH)
    assert resp.status == 200
    resp = await client.put(f"{TXN}/99", json={"events": [message(1), message(3)]}, headers=AUTH)
    assert resp.status == 200
    assert await inbox_ids(conn) == ["$event1", "$event2", "$event3"]


async def test_concurrent_identical_transactions_store_once(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    body = {"events": [message(n) for n in range(100)]}
    responses = await asyncio.gather(
        *(client.put(f"{TXN}/dup", json=body, headers=AUTH) for _ in range(4))
    )
    assert [r.status for r in responses] == [200] * 4
    assert await conn.fetchval("SELECT count(*) FROM inbox") == 100
    assert await conn.fetchval("SELECT count(DISTINCT event_id) FROM inbox") == 100


async def test_malformed_events_are_dead_lettered_with_reason(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    bad = [
        "not an object",
        {"type": "m.room.message", "room_id": "!r:localhost", "sender": "@a:localhost"},
        message(9) | {"room_id": 5},
        message(10) | {"sender": None},
    ]
    body = {"events": [message(1), *bad, message(2)]}
    for _ in range(2):  # a resend adds no second dead letter
        resp = await client.put(f"{TXN}/bad", json=body, headers=AUTH)
        assert resp.status == 200
    assert await inbox_ids(conn) == ["$event1", "$event2"]
    dead = await conn.fetch(
        "SELECT source, event_id, txn_id, error, payload FROM dead_letter ORDER BY id"
    )
    assert len(dead) == 4
    assert {d["source"] for d in dead} == {"intake"}
    assert {d["txn_id"] for d in dead} == {"bad"}
    errors = sorted(d["error"] for d in dead)
    assert errors == [
        "event is not a JSON object",
        "event_id missing or malformed",
        "room_id missing or malformed",
        "sender missing or malformed",
    ]
    assert json.loads(dead[0]["payload"]) == "not an object"


async def test_ephemeral_events_under_either_key(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    receipt = {
        "type": "m.receipt",
        "room_id": "!room:localhost",
        "content": {"$event1": {"m.read": {"@alice:localhost": {"ts": 1}}}},
    }
    typing = {
        "type": "m.typing",
        "room_id": "!room:localhost",
        "content": {"user_ids": ["@a:localhost"]},
    }
    presence = {"type": "m.presence", "sender": "@a:localhost", "content": {"presence": "online"}}
    resp = await client.put(f"{TXN}/s", json={"events": [], "ephemeral": [receipt]}, headers=AUTH)
    assert resp.status == 200
    resp = await client.put(
        f"{TXN}/u",
        json={"events": [], "de.sorunome.msc2409.ephemeral": [typing, presence]},
        headers=AUTH,
    )
    assert resp.status == 200
    # Synapse with both keys enabled sends the same list twice: stored once.
    both = [receipt | {"content": {"$event2": {"m.read": {"@b:localhost": {"ts": 2}}}}}]
    resp = await client.put(
        f"{TXN}/b",
        json={"events": [], "ephemeral": both, "de.sorunome.msc2409.ephemeral": both},
        headers=AUTH,
    )
    assert resp.status == 200
    rows = await conn.fetch("SELECT kind, event_type, lane, sender FROM inbox ORDER BY id")
    assert [(r["kind"], r["event_type"], r["lane"]) for r in rows] == [
        ("edu", "m.receipt", "!room:localhost"),
        ("edu", "m.typing", "!room:localhost"),
        ("edu", "m.presence", ""),
        ("edu", "m.receipt", "!room:localhost"),
    ]
    assert rows[2]["sender"] == "@a:localhost"


async def test_identical_edus_in_one_transaction_are_both_kept(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    typing = {"type": "m.typing", "room_id": "!room:localhost", "content": {"user_ids": []}}
    resp = await client.put(
        f"{TXN}/t", json={"events": [], "ephemeral": [typing, typing]}, headers=AUTH
    )
    assert resp.status == 200
    resp = await client.put(f"{TXN}/t2", json={"events": [], "ephemeral": [typing]}, headers=AUTH)
    assert resp.status == 200
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE kind = 'edu'") == 3


async def test_unstable_extension_keys_do_not_break_anything(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    body = {
        "events": [message(1)],
        "de.sorunome.msc2409.to_device": [
            {
                "type": "m.room_key_request",
                "sender": "@a:localhost",
                "to_user_id": "@_pn_bot:localhost",
                "to_device_id": "X",
                "content": {},
            }
        ],
        "org.matrix.msc3202.device_lists": {"changed": ["@a:localhost"], "left": []},
        "org.matrix.msc3202.device_one_time_keys_count": {},
        "org.matrix.msc3202.device_unused_fallback_key_types": {},
    }
    resp = await client.put(f"{TXN}/x", json=body, headers=AUTH)
    assert resp.status == 200
    assert await inbox_ids(conn) == ["$event1"]


async def test_legacy_path_stores_too(client: TestClient, conn: asyncpg.Connection) -> None:
    resp = await client.put("/transactions/1", json={"events": [message(1)]}, headers=AUTH)
    assert resp.status == 200
    assert await inbox_ids(conn) == ["$event1"]


# --- queries, ping, third party, health -------------------------------------------------------


class RecordingDirectory:
    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    async def query_user(self, user_id: str) -> bool:
        self.asked.append(("user", user_id))
        return user_id == "@_pn_known:localhost"

    async def query_alias(self, alias: str) -> bool:
        self.asked.append(("alias", alias))
        return alias == "#_pn_conv_known:localhost"

    async def lookup_users(self, fields: Any) -> list[dict[str, Any]]:
        self.asked.append(("users", dict(fields)))
        return [
            {
                "userid": "@_pn_known:localhost",
                "protocol": "professional-network",
                "fields": dict(fields),
            }
        ]

    async def lookup_locations(self, fields: Any) -> list[dict[str, Any]]:
        self.asked.append(("locations", dict(fields)))
        return []

    async def user_by_mxid(self, user_id: str) -> list[dict[str, Any]]:
        self.asked.append(("mxid", user_id))
        return []

    async def location_by_alias(self, alias: str) -> list[dict[str, Any]]:
        self.asked.append(("alias-lookup", alias))
        return []


@pytest.fixture
async def directory_client(
    config: Config, dsn: str, aiohttp_client: Any
) -> tuple[TestClient, RecordingDirectory]:
    directory = RecordingDirectory()
    return await aiohttp_client(await init_app(config, dsn, directory=directory)), directory


async def test_user_query_percent_encoded(directory_client: Any) -> None:
    client, directory = directory_client
    resp = await client.get("/_matrix/app/v1/users/%40_pn_known%3Alocalhost", headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {}
    resp = await client.get("/users/@_pn_unknown:localhost", headers=AUTH)
    await assert_error(resp, 404, "M_NOT_FOUND")
    assert directory.asked == [("user", "@_pn_known:localhost"), ("user", "@_pn_unknown:localhost")]


async def test_user_query_other_server_is_404_without_asking(directory_client: Any) -> None:
    client, directory = directory_client
    resp = await client.get("/_matrix/app/v1/users/@_pn_known:elsewhere.org", headers=AUTH)
    await assert_error(resp, 404, "M_NOT_FOUND")
    resp = await client.get("/_matrix/app/v1/users/not-a-user-id", headers=AUTH)
    await assert_error(resp, 404, "M_NOT_FOUND")
    assert directory.asked == []


async def test_alias_query(directory_client: Any) -> None:
    client, directory = directory_client
    resp = await client.get("/_matrix/app/v1/rooms/%23_pn_conv_known%3Alocalhost", headers=AUTH)
    assert resp.status == 200
    resp = await client.get("/rooms/%23_pn_conv_other:localhost", headers=AUTH)
    await assert_error(resp, 404, "M_NOT_FOUND")
    assert directory.asked == [
        ("alias", "#_pn_conv_known:localhost"),
        ("alias", "#_pn_conv_other:localhost"),
    ]


async def test_empty_directory_answers_404(client: TestClient) -> None:
    resp = await client.get("/_matrix/app/v1/users/@_pn_x:localhost", headers=AUTH)
    await assert_error(resp, 404, "M_NOT_FOUND")


async def test_ping(client: TestClient) -> None:
    resp = await client.post("/_matrix/app/v1/ping", json={"transaction_id": "abc"}, headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {}
    resp = await client.post("/_matrix/app/v1/ping", json={"transaction_id": 5}, headers=AUTH)
    await assert_error(resp, 400, "M_BAD_JSON")
    resp = await client.post("/_matrix/app/v1/ping", data=b"nope", headers=AUTH)
    await assert_error(resp, 400, "M_NOT_JSON")


async def test_thirdparty_protocol_shape(client: TestClient) -> None:
    resp = await client.get(
        "/_matrix/app/v1/thirdparty/protocol/professional-network", headers=AUTH
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["user_fields"] == ["userid"]
    assert body["location_fields"] == ["conversationid"]
    for field in body["user_fields"] + body["location_fields"]:
        assert set(body["field_types"][field]) == {"regexp", "placeholder"}
    assert body["instances"] and all(
        {"desc", "fields", "network_id"} <= set(i) for i in body["instances"]
    )
    resp = await client.get("/_matrix/app/v1/thirdparty/protocol/other", headers=AUTH)
    await assert_error(resp, 404, "M_NOT_FOUND")


async def test_thirdparty_lookups(directory_client: Any) -> None:
    client, directory = directory_client
    resp = await client.get(
        f"/_matrix/app/v1/thirdparty/user/professional-network?name=Ann&access_token={HS_TOKEN}"
    )
    assert resp.status == 200
    assert (await resp.json())[0]["userid"] == "@_pn_known:localhost"
    resp = await client.get(
        "/_matrix/app/v1/thirdparty/location/professional-network", headers=AUTH
    )
    assert await resp.json() == []
    resp = await client.get("/_matrix/app/v1/thirdparty/user?userid=@a:localhost", headers=AUTH)
    assert await resp.json() == []
    resp = await client.get(
        "/_matrix/app/v1/thirdparty/location?alias=%23a:localhost", headers=AUTH
    )
    assert await resp.json() == []
    resp = await client.get("/_matrix/app/v1/thirdparty/user", headers=AUTH)
    await assert_error(resp, 400, "M_MISSING_PARAM")
    assert directory.asked == [
        ("users", {"name": "Ann"}),
        ("locations", {}),
        ("mxid", "@a:localhost"),
        ("alias-lookup", "#a:localhost"),
    ]


async def test_health(client: TestClient, conn: asyncpg.Connection) -> None:
    resp = await client.get("/_matrix/mau/live")
    assert resp.status == 200
    resp = await client.get("/_matrix/mau/ready")
    assert resp.status == 200
    assert (await resp.json())["ok"] is True
    await conn.execute("UPDATE alembic_version SET version_num = '0000'")
    resp = await client.get("/_matrix/mau/ready")
    assert resp.status == 503
    assert (await resp.json())["ok"] is False


async def test_unstorable_characters_are_dead_lettered_not_500(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    """jsonb holds neither U+0000 nor lone surrogates; such events are kept aside, with the reason."""
    nul = message(1) | {"content": {"body": "a\u0000b"}}
    lone = '{"event_id":"$s","type":"m.room.message","room_id":"!r:localhost","sender":"@a:localhost","content":{"body":"\\ud800"}}'
    bad_type = message(3) | {"type": "m.\u0000evil"}
    body = (
        '{"events":['
        + ",".join([json.dumps(nul), lone, json.dumps(bad_type), json.dumps(message(4))])
        + "]}"
    )
    resp = await client.put(f"{TXN}/nul", data=body.encode(), headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert await inbox_ids(conn) == ["$event4"]
    errors = sorted(r["error"] for r in await conn.fetch("SELECT error FROM dead_letter"))
    assert errors == [
        "event contains U+0000, which the database cannot store",
        "event contains an unpaired UTF-16 surrogate",
        "type missing or malformed",
    ]
    # An emoji (a valid surrogate pair when escaped) goes through the fast path untouched.
    emoji = '{"events":[{"event_id":"$e","type":"m.room.message","room_id":"!r:localhost","sender":"@a:localhost","content":{"body":"\\ud83d\\ude00 ok"}}]}'
    resp = await client.put(f"{TXN}/emoji", data=emoji.encode(), headers=AUTH)
    assert resp.status == 200
    stored = await conn.fetchval("SELECT event FROM inbox WHERE event_id = '$e'")
    assert json.loads(stored)["content"]["body"] == "\U0001f600 ok"


async def test_stored_pdu_is_the_event_as_sent(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    event = message(7) | {
        "unsigned": {"age": 12},
        "content": {"body": "héllo ✓", "formatted_body": "<b>x</b>"},
    }
    resp = await client.put(f"{TXN}/exact", json={"events": [message(6), event]}, headers=AUTH)
    assert resp.status == 200
    stored = await conn.fetchval("SELECT event FROM inbox WHERE event_id = '$event7'")
    assert json.loads(stored) == event
