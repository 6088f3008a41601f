"""The homeserver's user and alias queries against the full app and a recording fake homeserver."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bridge.app import CONTEXT, init_app
from bridge.config import parse_config
from bridge.db.database import init_connection
from bridge.messaging.models import Origin
from tests.conftest import AS_TOKEN, HS_TOKEN, config_data
from tests.fake_homeserver import FakeHomeserver, serve_fake_homeserver

AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}


@pytest.fixture
async def client(hs: FakeHomeserver, dsn: str, aiohttp_client: Any) -> TestClient:
    # An intake process: the homeserver's queries are answered synchronously, with no outbox
    # sender racing them for the portal the reference's conversation queued.
    config = parse_config(config_data(homeserver__address=hs.url, appservice__role="intake"))
    return await aiohttp_client(await init_app(config, dsn))


async def people_and_conversation(
    client: TestClient, dsn: str
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Bob (network), Alice (Matrix) and their group conversation.

    Made as if from Matrix, so that no portal is queued in the outbox: only the queries under
    test create it (otherwise the running outbox sender races them for the room).
    """
    ctx = client.app[CONTEXT]
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        async with conn.transaction():
            bob = await ctx.users.create(conn, "Bob Network", "mxc://localhost/bobface")
            alice = await ctx.users.for_matrix_user(conn, "@alice:localhost")
            cat = await ctx.users.create(conn, "Cat Network")
            conv = await ctx.messaging.create_group(
                conn,
                bob.id,
                [alice.id, cat.id],
                title="Plans",
                topic="Q3",
                origin=Origin.MATRIX,
                admin=True,  # an administrator's group: no connections needed
            )
    finally:
        await conn.close()
    return bob.id, alice.id, conv.id


async def test_user_query_registers_the_ghost_before_200(
    client: TestClient, hs: FakeHomeserver, dsn: str, conn: asyncpg.Connection
) -> None:
    bob, _, _ = await people_and_conversation(client, dsn)
    ghost = f"@_pn_{bob}:localhost"
    resp = await client.get(f"/_matrix/app/v1/users/{ghost}", headers=AUTH)
    assert resp.status == 200
    assert ghost in hs.registered
    assert hs.profiles[ghost]["displayname"] == "Bob Network"
    assert hs.profiles[ghost]["avatar_url"] == "mxc://localhost/bobface"
    row = await conn.fetchrow(
        "SELECT network_user_id, registered_at FROM ghost WHERE user_id = $1", ghost
    )
    assert row["network_user_id"] == bob and row["registered_at"] is not None
    # Twice at once is safe.
    responses = await asyncio.gather(
        *(client.get(f"/_matrix/app/v1/users/{ghost}", headers=AUTH) for _ in range(2))
    )
    assert [r.status for r in responses] == [200, 200]
    assert hs.violations == []


async def test_user_query_for_unknown_ids_is_404_without_registering(
    client: TestClient, hs: FakeHomeserver
) -> None:
    for user_id in (
        f"@_pn_{uuid.uuid4()}:localhost",
        "@_pn_not-a-uuid:localhost",
        "@alice:localhost",
    ):
        resp = await client.get(f"/_matrix/app/v1/users/{user_id}", headers=AUTH)
        assert resp.status == 404
    assert hs.calls_to("/register") == []


async def test_alias_query_creates_the_portal_before_200(
    client: TestClient, hs: FakeHomeserver, dsn: str, conn: asyncpg.Connection
) -> None:
    bob, _, conv = await people_and_conversation(client, dsn)
    alias = f"#_pn_conv_{conv}:localhost"
    responses = await asyncio.gather(
        *(
            client.get(f"/_matrix/app/v1/rooms/{alias.replace('#', '%23')}", headers=AUTH)
            for _ in range(2)
        )
    )
    assert [r.status for r in responses] == [200, 200]
    assert len(hs.calls_to("/createRoom")) == 1  # the second query waited and found it
    room_id = hs.aliases[alias]
    room = hs.rooms[room_id]
    ghost = f"@_pn_{bob}:localhost"
    assert room.creator == "@_pn_bot:localhost"
    assert room.members[ghost] == "join"
    assert room.members["@alice:localhost"] == "invite"
    assert room.state[("m.room.name", "")].content == {"name": "Plans"}
    assert room.state[("m.room.topic", "")].content == {"topic": "Q3"}
    portal = await conn.fetchrow(
        "SELECT room_id, alias FROM portal WHERE conversation_id = $1", conv
    )
    assert (portal["room_id"], portal["alias"]) == (room_id, alias)
    resp = await client.get(
        f"/_matrix/app/v1/rooms/%23_pn_conv_{uuid.uuid4()}:localhost", headers=AUTH
    )
    assert resp.status == 404
    assert hs.violations == []


async def test_thirdparty_lookups_find_network_users(client: TestClient, dsn: str) -> None:
    bob, _, conv = await people_and_conversation(client, dsn)
    resp = await client.get(
        "/_matrix/app/v1/thirdparty/user/professional-network?name=bob", headers=AUTH
    )
    assert await resp.json() == [
        {
            "userid": f"@_pn_{bob}:localhost",
            "protocol": "professional-network",
            "fields": {"userid": str(bob), "name": "Bob Network"},
        }
    ]
    resp = await client.get(
        f"/_matrix/app/v1/thirdparty/location?alias=%23_pn_conv_{conv}:localhost", headers=AUTH
    )
    assert (await resp.json())[0]["fields"] == {"conversationid": str(conv)}
    resp = await client.get(
        f"/_matrix/app/v1/thirdparty/user?userid=@_pn_{bob}:localhost", headers=AUTH
    )
    assert (await resp.json())[0]["userid"] == f"@_pn_{bob}:localhost"


@pytest.mark.parametrize("room_version", ["11", "12"])
async def test_portal_power_levels_fit_the_room_version(
    room_version: str, aiohttp_server: Any, dsn: str, aiohttp_client: Any
) -> None:
    """v12 creators are implied (listing them is refused); before v12 they must be listed."""
    fake = await serve_fake_homeserver(aiohttp_server, AS_TOKEN, room_version=room_version)
    config = parse_config(config_data(homeserver__address=fake.url, appservice__role="intake"))
    client = await aiohttp_client(await init_app(config, dsn))
    bob, _, conv = await people_and_conversation(client, dsn)
    resp = await client.get(f"/_matrix/app/v1/rooms/%23_pn_conv_{conv}:localhost", headers=AUTH)
    assert resp.status == 200
    (call,) = fake.calls_to("/createRoom")
    users = call.body["power_level_content_override"]["users"]
    assert users[f"@_pn_{bob}:localhost"] == 50
    assert ("@_pn_bot:localhost" in users) is (room_version == "11")
    assert fake.violations == []
