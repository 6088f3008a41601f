"""Conversation rules on the Matrix path, against the full app and a recording fake homeserver:
a group starts with three participants, and a ghost joins a group only as a connection of its
inviter (a connection request is sent otherwise, and the ghost joins once it is accepted)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bridge.app import CONTEXT, DATABASE, init_app
from bridge.config import parse_config
from bridge.matrix.bridging.context import BridgingContext
from tests.conftest import HS_TOKEN, config_data
from tests.fake_homeserver import FakeHomeserver

AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}
ALICE = "@alice:localhost"
BOSS = "@boss:localhost"
_ids = itertools.count(1)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll ``check`` until it holds (bounded)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 (a database condition: nothing to wait on)
            await asyncio.sleep(0.02)


@pytest.fixture
async def client(hs: FakeHomeserver, dsn: str, aiohttp_client: Any) -> TestClient:
    permissions = {"*": "block", "localhost": "user", BOSS: "admin"}
    config = parse_config(config_data(homeserver__address=hs.url, bridge__permissions=permissions))
    return await aiohttp_client(await init_app(config, dsn))


class World:
    def __init__(self, client: TestClient, hs: FakeHomeserver, conn: asyncpg.Connection) -> None:
        self.client, self.hs, self.conn = client, hs, conn
        self.ctx: BridgingContext = client.app[CONTEXT]

    async def person(self, name: str) -> uuid.UUID:
        return (await self.ctx.users.add(name)).id

    async def matrix_user(self, mxid: str) -> uuid.UUID:
        async with self.client.app[DATABASE].transaction() as conn:
            return (await self.ctx.users.for_matrix_user(conn, mxid)).id

    def ghost(self, user_id: uuid.UUID) -> str:
        return self.ctx.ids.ghost(user_id)

    async def invite(self, room_id: str, inviter: str, user_id: uuid.UUID) -> None:
        """``inviter`` invites the ghost in the fake, and the homeserver pushes the event."""
        ghost = self.ghost(user_id)
        self.hs.rooms[room_id].members[ghost] = "invite"
        await self.push(room_id, inviter, ghost, "invite")

    async def push(self, room_id: str, sender: str, target: str, membership: str) -> None:
        n = next(_ids)
        event = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": sender,
            "state_key": target,
            "event_id": f"$m{n}",
            "origin_server_ts": 1_700_000_000_000 + n,
            "content": {"membership": membership},
        }
        resp = await self.client.put(
            f"/_matrix/app/v1/transactions/t{n}", json={"events": [event]}, headers=AUTH
        )
        assert resp.status == 200

    async def processed(self) -> None:
        """Every pushed event handled (processed or ignored), none dead-lettered."""

        async def done() -> bool:
            return (
                await self.conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'") == 0
            )

        await eventually(done)
        assert await self.conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'dead'") == 0
        assert await self.conn.fetchval("SELECT count(*) FROM dead_letter") == 0

    async def joined(self, room_id: str, user_id: uuid.UUID) -> None:
        ghost = self.ghost(user_id)
        await self.hs.wait_for(lambda: self.hs.rooms[room_id].members.get(ghost) == "join")

    async def queued(self, action: str, user_id: uuid.UUID) -> int:
        return await self.conn.fetchval(
            "SELECT count(*) FROM outbox WHERE action = $1 AND sender = $2",
            action,
            self.ghost(user_id),
        )

    async def participants(self, room_id: str) -> set[uuid.UUID]:
        rows = await self.conn.fetch(
            """SELECT p.user_id FROM conversation_participant p JOIN portal USING (conversation_id)
               WHERE portal.room_id = $1""",
            room_id,
        )
        return {r["user_id"] for r in rows}

    async def waiting(self) -> list[tuple[str, uuid.UUID]]:
        return [
            (r["room_id"], r["user_id"])
            for r in await self.conn.fetch("SELECT room_id, user_id FROM waiting_invite")
        ]

    def notices(self) -> list[str]:
        return [
            e.content.get("body", "")
            for room in self.hs.rooms.values()
            for e in room.timeline()
            if e.content.get("msgtype") == "m.notice"
        ]


@pytest.fixture
def world(client: TestClient, hs: FakeHomeserver, conn: asyncpg.Connection) -> World:
    return World(client, hs, conn)


async def group_of_three(w: World) -> tuple[str, uuid.UUID, uuid.UUID, uuid.UUID]:
    """Alice's room with Bob and Cat, her connections: (room, alice, bob, cat)."""
    alice, bob, cat = await w.matrix_user(ALICE), await w.person("Bob"), await w.person("Cat")
    await w.ctx.networking.connect(alice, bob)
    await w.ctx.networking.connect(alice, cat)
    room = w.hs.add_room([ALICE])
    await w.invite(room, ALICE, bob)
    await w.processed()
    # Two would be a group of two: nothing is bridged yet, Bob's ghost waits, Alice is told.
    assert await w.conn.fetchval("SELECT count(*) FROM portal WHERE room_id = $1", room) == 0
    assert await w.queued("join", bob) == 0
    assert await w.waiting() == [(room, bob)]
    await w.hs.wait_for(lambda: any("at least 3 participants" in n for n in w.notices()))
    await w.invite(room, ALICE, cat)
    await w.joined(room, bob)
    await w.joined(room, cat)
    assert await w.participants(room) == {alice, bob, cat}
    assert await w.waiting() == []
    return room, alice, bob, cat


async def test_a_group_room_starts_with_three_participants(world: World) -> None:
    room, *_ = await group_of_three(world)
    assert (
        await world.conn.fetchval(
            "SELECT is_group FROM conversation JOIN portal ON portal.conversation_id = conversation.id"
            " WHERE portal.room_id = $1",
            room,
        )
        is True
    )
    assert world.hs.violations == []


async def test_an_unconnected_ghost_joins_once_the_request_is_accepted(world: World) -> None:
    room, alice, _bob, _cat = await group_of_three(world)
    dan = await world.person("Dan")
    await world.invite(room, ALICE, dan)
    await world.processed()
    request = await world.conn.fetchrow(
        "SELECT id, sender_id, receiver_id, status FROM connection_request"
    )
    assert (request["sender_id"], request["receiver_id"], request["status"]) == (
        alice,
        dan,
        "pending",
    )
    assert dan not in await world.participants(room)
    assert await world.queued("join", dan) == 0
    assert world.hs.rooms[room].members[world.ghost(dan)] == "invite"
    await world.hs.wait_for(
        lambda: any("Dan is not a connection of yours yet" in n for n in world.notices())
    )
    # Dan accepts on the network: he is added, and his ghost joins the room.
    await world.ctx.networking.answer(dan, request["id"], accept=True)
    await world.joined(room, dan)
    assert dan in await world.participants(room)
    assert await world.waiting() == []


async def test_a_declined_request_makes_the_ghost_decline(world: World) -> None:
    room, _alice, _bob, _cat = await group_of_three(world)
    dan = await world.person("Dan")
    await world.invite(room, ALICE, dan)
    await world.processed()
    request_id = await world.conn.fetchval("SELECT id FROM connection_request")
    await world.ctx.networking.answer(dan, request_id, accept=False)
    ghost = world.ghost(dan)
    await world.hs.wait_for(lambda: world.hs.rooms[room].members.get(ghost) == "leave")
    (leave,) = [
        e
        for e in world.hs.rooms[room].events
        if e.state_key == ghost and e.content["membership"] == "leave"
    ]
    assert "declined" in leave.content["reason"]
    assert dan not in await world.participants(room)
    assert await world.waiting() == []


async def test_an_invite_taken_back_is_forgotten(world: World) -> None:
    room, _alice, _bob, _cat = await group_of_three(world)
    dan = await world.person("Dan")
    await world.invite(room, ALICE, dan)
    await world.processed()
    world.hs.rooms[room].members[world.ghost(dan)] = "leave"
    await world.push(room, ALICE, world.ghost(dan), "leave")
    await world.processed()
    assert await world.waiting() == []
    request_id = await world.conn.fetchval("SELECT id FROM connection_request")
    await world.ctx.networking.answer(
        dan, request_id, accept=True
    )  # connected, but not invited now
    await world.processed()
    assert await world.queued("join", dan) == 0
    assert dan not in await world.participants(room)


async def test_a_new_room_of_unconnected_ghosts_starts_when_both_accept(world: World) -> None:
    alice, bob, cat = (
        await world.matrix_user(ALICE),
        await world.person("Bob"),
        await world.person("Cat"),
    )
    room = world.hs.add_room([ALICE])
    await world.invite(room, ALICE, bob)
    await world.invite(room, ALICE, cat)
    await world.processed()
    assert (
        await world.conn.fetchval(
            "SELECT count(*) FROM connection_request WHERE status = 'pending'"
        )
        == 2
    )
    assert sorted(await world.waiting()) == sorted([(room, bob), (room, cat)])
    bob_request = await world.conn.fetchval(
        "SELECT id FROM connection_request WHERE receiver_id = $1", bob
    )
    await world.ctx.networking.answer(bob, bob_request, accept=True)
    await world.processed()
    assert await world.conn.fetchval("SELECT count(*) FROM portal WHERE room_id = $1", room) == 0
    assert await world.queued("join", bob) == 0  # a group of two would not do: Bob waits for Cat
    cat_request = await world.conn.fetchval(
        "SELECT id FROM connection_request WHERE receiver_id = $1", cat
    )
    await world.ctx.networking.answer(cat, cat_request, accept=True)
    await world.joined(room, bob)
    await world.joined(room, cat)
    assert await world.participants(room) == {alice, bob, cat}


async def test_admins_add_anyone(world: World) -> None:
    boss, bob, cat = (
        await world.matrix_user(BOSS),
        await world.person("Bob"),
        await world.person("Cat"),
    )
    room = world.hs.add_room([BOSS])
    await world.invite(room, BOSS, bob)
    await world.invite(room, BOSS, cat)
    await world.joined(room, bob)
    await world.joined(room, cat)
    assert await world.participants(room) == {boss, bob, cat}
    assert await world.conn.fetchval("SELECT count(*) FROM connection_request") == 0


async def test_a_ghost_invited_into_a_direct_portal_declines(world: World) -> None:
    alice, bob, cat = (
        await world.matrix_user(ALICE),
        await world.person("Bob"),
        await world.person("Cat"),
    )
    await world.ctx.networking.connect(alice, bob)
    await world.ctx.networking.connect(alice, cat)
    room = world.hs.add_room([ALICE])
    world.hs.rooms[room].members[world.ghost(bob)] = "invite"
    n = next(_ids)
    direct = {
        "type": "m.room.member",
        "room_id": room,
        "sender": ALICE,
        "state_key": world.ghost(bob),
        "event_id": f"$d{n}",
        "origin_server_ts": 1_700_000_000_000,
        "content": {"membership": "invite", "is_direct": True},
    }
    await world.client.put(
        f"/_matrix/app/v1/transactions/d{n}", json={"events": [direct]}, headers=AUTH
    )
    await world.joined(room, bob)
    await world.invite(room, ALICE, cat)
    ghost = world.ghost(cat)
    await world.hs.wait_for(lambda: world.hs.rooms[room].members.get(ghost) == "leave")
    assert await world.participants(room) == {alice, bob}


async def test_only_participants_add_to_a_group(world: World) -> None:
    """Dan is in the room but never became a participant (he joined before the bridge was
    there): his invite of a connection of his is declined, and no request is sent for it."""
    room, *_ = await group_of_three(world)
    dan, erin, fay = (
        await world.matrix_user("@dan:localhost"),
        await world.person("Erin"),
        await world.person("Fay"),
    )
    await world.ctx.networking.connect(dan, erin)
    world.hs.rooms[room].members["@dan:localhost"] = "join"
    for ghost_of in (erin, fay):
        await world.invite(room, "@dan:localhost", ghost_of)
        ghost = world.ghost(ghost_of)
        await world.hs.wait_for(lambda g=ghost: world.hs.rooms[room].members.get(g) == "leave")  # type: ignore[misc]
    assert {erin, fay}.isdisjoint(await world.participants(room))
    assert await world.conn.fetchval("SELECT count(*) FROM connection_request") == 0
