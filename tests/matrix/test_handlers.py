"""Matrix events through the inbox into the domain tables, with the outbox actions they queue."""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bridge.config import Config, InboxConfig
from bridge.db.database import Database
from bridge.matrix.bridging.context import BridgingContext
from bridge.matrix.bridging.from_matrix import register_handlers
from bridge.matrix.bridging.portal_store import PortalStore
from bridge.matrix.bridging.to_matrix.network_changes import NetworkChangesToMatrix
from bridge.matrix.bridging.to_matrix.request_answers import RequestAnswersToMatrix
from bridge.matrix.ids import MatrixIds
from bridge.matrix.inbox.dispatch import BatchHandler, Dispatcher, Handler
from bridge.matrix.inbox.events import EventKind, IncomingEvent
from bridge.matrix.inbox.intake import IntakeService
from bridge.matrix.inbox.processor import InboxProcessor
from bridge.matrix.inbox.store import InboxStore
from bridge.matrix.outbox.actions import OutboxAction, decode, encode, to_json
from bridge.matrix.outbox.store import OutboxStore
from bridge.services import build_services

ALICE = "@alice:localhost"
DM = "!dm:localhost"
_ids = itertools.count()


class RecordingOutbox:
    """Records what handlers queue, and checks its shape as the real outbox would need it."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, str, str, dict[str, Any]]] = []

    async def enqueue(
        self, conn: asyncpg.Connection, lane: str, sender: str, action: OutboxAction
    ) -> int:
        assert sender.startswith("@") and ":" in sender
        payload = to_json(action)
        kind = payload.pop("action")
        assert decode(kind, encode(action)) == action  # it reads back as the sender will read it
        self.actions.append((lane, sender, kind, payload))
        return await OutboxStore().enqueue(conn, lane, sender, action)  # stored for real

    def of(self, action: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(lane, sender, payload) for lane, sender, a, payload in self.actions if a == action]

    def notices(self) -> list[str]:
        return [
            p["content"]["body"]
            for _, _, p in self.of("send")
            if p["content"].get("msgtype") == "m.notice"
        ]


class OneByOne(Dispatcher):
    """A dispatcher that ignores batch handlers: every event through its own handler."""

    def register(
        self, event_type: str, handler: Handler, *, batch: BatchHandler | None = None
    ) -> None:
        super().register(event_type, handler)


class Bridge:
    def __init__(self, db: Database, config: Config, *, batch: bool = True) -> None:
        self.db = db
        self.outbox = RecordingOutbox()
        services = build_services(db)
        notifications = self.notifications = services.notifications
        self.users = services.users
        self.messaging = services.messaging
        self.networking = services.networking
        self.ids = MatrixIds(config)
        self.ctx = BridgingContext(
            config=config,
            ids=self.ids,
            portals=PortalStore(),
            outbox=self.outbox,
            users=self.users,
            messaging=self.messaging,
            networking=self.networking,
            notifications=notifications,
        )
        self.networking.add_listener(RequestAnswersToMatrix(self.ctx))
        to_matrix = self.to_matrix = NetworkChangesToMatrix(self.ctx)
        self.messaging.add_listener(to_matrix)
        self.networking.add_listener(to_matrix)
        notifications.add_listener(to_matrix)
        dispatcher = Dispatcher() if batch else OneByOne()
        register_handlers(dispatcher, self.ctx)
        self.dispatcher = dispatcher
        self.processor = InboxProcessor(db, InboxStore(), dispatcher, InboxConfig(max_attempts=1))
        self.intake = IntakeService(db, InboxStore(), lambda: None)

    async def feed(self, *events: dict[str, Any], ephemeral: bool = False) -> None:
        incoming = []
        for ev in events:
            if ephemeral:
                incoming.append(
                    IncomingEvent(
                        f"edu:{next(_ids)}",
                        ev["room_id"],
                        EventKind.EDU,
                        ev["type"],
                        None,
                        json.dumps(ev),
                    )
                )
            else:
                ev.setdefault("event_id", f"$ev{next(_ids)}")
                incoming.append(
                    IncomingEvent(
                        ev["event_id"],
                        ev["room_id"],
                        EventKind.PDU,
                        ev["type"],
                        ev["sender"],
                        json.dumps(ev),
                    )
                )
        txn = str(next(_ids))
        await self.intake.receive(txn, hashlib.sha256(txn.encode()).digest(), incoming, [])
        await self.processor.drain()

    async def person(self, name: str) -> uuid.UUID:
        async with self.db.transaction() as conn:
            return (await self.users.create(conn, name)).id


def member(room: str, sender: str, target: str, membership: str, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "room_id": room,
        "sender": sender,
        "state_key": target,
        "content": {"membership": membership, **content},
    }


def text(room: str, sender: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": room,
        "sender": sender,
        "origin_server_ts": 1_700_000_000_000 + next(_ids),
        "content": {"msgtype": "m.text", "body": body, **extra},
    }


@pytest.fixture
async def bridge(dsn: str, config: Config) -> AsyncIterator[Bridge]:
    db = Database(dsn, min_size=1, max_size=4)
    await db.open()
    yield Bridge(db, config)
    await db.close()


async def connect(b: Bridge, other: uuid.UUID) -> uuid.UUID:
    async with b.db.transaction() as conn:
        alice = (await b.users.for_matrix_user(conn, ALICE)).id
        request, _ = await b.networking.send_request(conn, alice, other)
        await b.networking.accept(conn, receiver=other, request_id=request.id)
    return alice


async def open_dm(b: Bridge, bob: uuid.UUID) -> None:
    await connect(b, bob)
    await b.feed(member(DM, ALICE, b.ids.ghost(bob), "invite", is_direct=True))


async def test_dm_with_connected_user_starts_a_conversation(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    portal = await conn.fetchrow("SELECT conversation_id FROM portal WHERE room_id = $1", DM)
    assert portal is not None
    parts = {
        r["user_id"]
        for r in await conn.fetch(
            "SELECT user_id FROM conversation_participant WHERE conversation_id = $1",
            portal["conversation_id"],
        )
    }
    assert bob in parts and len(parts) == 2
    assert (DM, bridge.ids.ghost(bob), {"room_id": DM}) in bridge.outbox.of("join")


async def test_dm_with_unconnected_user_is_a_pending_request(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    ghost = bridge.ids.ghost(bob)
    await bridge.feed(member(DM, ALICE, ghost, "invite", is_direct=True, reason="Let's connect"))
    request = await conn.fetchrow(
        "SELECT status, message, room_id, receiver_id FROM connection_request"
    )
    assert dict(request) == {
        "status": "pending",
        "message": "Let's connect",
        "room_id": DM,
        "receiver_id": bob,
    }
    assert bridge.outbox.of("join") == []  # the ghost stays invited
    ((_lane, _sender, payload),) = bridge.outbox.of(
        "create_room"
    )  # no management room yet: one is opened
    assert payload["management_for"] == ALICE and payload["invite"] == [ALICE]
    assert "pending" in payload["initial_notice"]
    # Bob accepts on the network: the ghost joins and the conversation starts.
    async with bridge.db.transaction() as c:
        request_id = await c.fetchval("SELECT id FROM connection_request")
        await bridge.networking.accept(c, receiver=bob, request_id=request_id)
    assert (DM, ghost, {"room_id": DM}) in bridge.outbox.of("join")
    assert await conn.fetchval("SELECT count(*) FROM portal WHERE room_id = $1", DM) == 1


async def test_rejected_request_makes_the_ghost_decline(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    await bridge.feed(member(DM, ALICE, bridge.ids.ghost(bob), "invite", is_direct=True))
    async with bridge.db.transaction() as c:
        request_id = await c.fetchval("SELECT id FROM connection_request")
        await bridge.networking.reject(c, receiver=bob, request_id=request_id)
    ((_lane, sender, payload),) = bridge.outbox.of("leave")
    assert (
        sender == bridge.ids.ghost(bob)
        and payload["room_id"] == DM
        and "declined" in payload["reason"]
    )


async def test_messages_edits_replies_redactions_reactions_receipts(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    first = text(
        DM,
        ALICE,
        "hello <b>",
        format="org.matrix.custom.html",
        formatted_body="hello <b>bob</b><img src=x onerror=alert(1)>",
    )
    await bridge.feed(first)
    row = await conn.fetchrow(
        "SELECT id, content, formatted_content, event_id, origin FROM message"
    )
    assert (row["content"], row["event_id"], row["origin"]) == (
        "hello <b>",
        first["event_id"],
        "matrix",
    )
    assert row["formatted_content"] == "hello <b>bob</b><img>"
    reply = text(
        DM,
        ALICE,
        "and again",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": first["event_id"]}}},
    )
    edit = text(
        DM,
        ALICE,
        "* hi",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "hi bob"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first["event_id"]},
        },
    )
    react = {
        "type": "m.reaction",
        "room_id": DM,
        "sender": ALICE,
        "content": {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": first["event_id"], "key": "👍"}
        },
    }
    await bridge.feed(reply, edit, react)
    msg = await conn.fetchrow(
        "SELECT content, record_version, edited_at FROM message WHERE id = $1", row["id"]
    )
    assert (msg["content"], msg["record_version"]) == ("hi bob", 2) and msg["edited_at"] is not None
    assert (
        await conn.fetchval(
            "SELECT reply_to_message_id FROM message WHERE event_id = $1", reply["event_id"]
        )
        == row["id"]
    )
    assert (
        await conn.fetchval("SELECT key FROM reaction WHERE event_id = $1", react["event_id"])
        == "👍"
    )
    # Bob's ghost can't send receipts through Matrix; Alice reads Bob's network message.
    async with bridge.db.transaction() as c:
        conv = await c.fetchval("SELECT conversation_id FROM portal")
        from bridge.messaging.models import NewMessage, Origin

        bobs = await bridge.messaging.post(
            c, bob, conv, NewMessage("from bob"), origin=Origin.NETWORK
        )
        await bridge.messaging.set_event_id(c, bobs.id, "$bobs")
    receipt = {
        "type": "m.receipt",
        "room_id": DM,
        "content": {"$bobs": {"m.read": {ALICE: {"ts": 1}}}},
    }
    await bridge.feed(receipt, ephemeral=True)
    alice = await conn.fetchval("SELECT id FROM network_user WHERE matrix_user_id = $1", ALICE)
    assert (
        await conn.fetchval("SELECT message_id FROM read_marker WHERE user_id = $1", alice)
        == bobs.id
    )
    await bridge.feed(
        {
            "type": "m.room.redaction",
            "room_id": DM,
            "sender": ALICE,
            "redacts": react["event_id"],
            "content": {},
        },
        {
            "type": "m.room.redaction",
            "room_id": DM,
            "sender": ALICE,
            "redacts": first["event_id"],
            "content": {},
        },
    )
    assert await conn.fetchval("SELECT count(*) FROM reaction") == 0
    assert await conn.fetchval("SELECT is_active FROM message WHERE id = $1", row["id"]) is False


async def test_echoes_of_ghosts_are_ignored(bridge: Bridge, conn: asyncpg.Connection) -> None:
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    echo = text(DM, bridge.ids.ghost(bob), "echo")
    await bridge.feed(echo)
    assert await conn.fetchval("SELECT count(*) FROM message") == 0
    assert (
        await conn.fetchval("SELECT state FROM inbox WHERE event_id = $1", echo["event_id"])
        == "ignored"
    )


async def test_blocked_servers_are_refused_with_a_notice(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    await bridge.feed(
        member("!x:localhost", "@eve:evil.org", bridge.ids.ghost(bob), "invite", is_direct=True)
    )
    ((_lane, _sender, payload),) = [a for a in bridge.outbox.of("leave") if a[0] == "!x:localhost"]
    assert "not allowed" in payload["reason"]
    await bridge.feed(text(DM, "@eve:evil.org", "spam"))
    assert await conn.fetchval("SELECT count(*) FROM message") == 0
    assert any("not allowed" in n for n in bridge.outbox.notices())
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM network_user WHERE matrix_user_id = '@eve:evil.org'"
        )
        == 0
    )


async def test_group_portal_membership_name_and_topic(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob, cat = await bridge.person("Bob"), await bridge.person("Cat")
    await connect(bridge, bob)
    await connect(bridge, cat)
    room = "!group:localhost"
    await bridge.feed(
        member(room, ALICE, bridge.ids.ghost(bob), "invite"),
        member(room, ALICE, bridge.ids.ghost(cat), "invite"),
    )
    conv = await conn.fetchval("SELECT conversation_id FROM portal WHERE room_id = $1", room)
    assert await conn.fetchval("SELECT is_group FROM conversation WHERE id = $1", conv) is True
    await bridge.feed(
        member(room, "@dan:localhost", "@dan:localhost", "join", displayname="Dan"),
        {
            "type": "m.room.name",
            "room_id": room,
            "sender": ALICE,
            "state_key": "",
            "content": {"name": "Team"},
        },
        {
            "type": "m.room.topic",
            "room_id": room,
            "sender": ALICE,
            "state_key": "",
            "content": {"topic": "Plans"},
        },
    )
    names = {
        r["display_name"]
        for r in await conn.fetch(
            "SELECT u.display_name FROM conversation_participant p JOIN network_user u ON u.id = p.user_id WHERE p.conversation_id = $1",
            conv,
        )
    }
    assert names == {"alice", "Bob", "Cat", "Dan"}
    assert tuple(
        await conn.fetchrow("SELECT title, topic FROM conversation WHERE id = $1", conv)
    ) == ("Team", "Plans")
    await bridge.feed(
        member(room, "@dan:localhost", "@dan:localhost", "leave"),
        member(room, ALICE, bridge.ids.ghost(cat), "leave"),
    )
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM conversation_participant WHERE conversation_id = $1", conv
        )
        == 2
    )


async def test_management_room_commands(bridge: Bridge, conn: asyncpg.Connection) -> None:
    bob = await bridge.person("Bob")
    mgmt = "!mgmt:localhost"
    await bridge.feed(member(mgmt, ALICE, bridge.ids.bot, "invite", is_direct=True))
    assert (mgmt, bridge.ids.bot, {"room_id": mgmt}) in bridge.outbox.of("join")
    assert (
        await conn.fetchval("SELECT room_id FROM management_room WHERE user_id = $1", ALICE) == mgmt
    )
    await bridge.feed(
        text(mgmt, ALICE, "whoami"),
        text(mgmt, ALICE, f"connect {bob} hello there"),
        text(mgmt, ALICE, "requests"),
        text(mgmt, ALICE, "frobnicate"),
        text(mgmt, ALICE, "accept nope"),
    )
    notices = bridge.outbox.notices()
    assert "management room" in notices[0]
    assert notices[1].startswith("You are alice")
    assert "Connection request" in notices[2] and "sent to Bob" in notices[2]
    request_id = await conn.fetchval("SELECT id FROM connection_request")
    assert str(request_id) in notices[3] and "hello there" in notices[3]
    assert "Unknown command" in notices[4]
    assert "not a request id" in notices[5]
    await bridge.feed(
        text(mgmt, ALICE, f"cancel {request_id}"),
        text(mgmt, ALICE, f"accept {request_id}"),
        text(mgmt, ALICE, "connections"),
        text(mgmt, ALICE, "notifications"),
        text(mgmt, ALICE, "seen"),
    )
    notices = bridge.outbox.notices()[6:]
    assert notices[0] == f"Cancelled request {request_id}."
    assert notices[1].startswith("accept: ")  # no longer pending, or not the receiver
    assert notices[2] == "You have no connections yet."
    assert notices[3] == "No notifications."
    assert notices[4] == "Marked 0 notification(s) seen."
    assert await conn.fetchval("SELECT status FROM connection_request") == "cancelled"
    # Every notice went to the management room, from the bot.
    assert {(lane, sender) for lane, sender, p in bridge.outbox.of("send")} == {
        (mgmt, bridge.ids.bot)
    }
