"""Network-side changes queue the right Matrix actions, in the same DB transaction."""

from __future__ import annotations

import asyncpg

from bridge.messaging.models import NewMessage, Origin
from tests.matrix.test_handlers import ALICE, DM, Bridge, member, open_dm


async def test_network_message_edit_delete_are_sent_by_the_ghost(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    ghost = bridge.ids.ghost(bob)
    async with bridge.db.transaction() as c:
        conv = await c.fetchval("SELECT conversation_id FROM portal WHERE room_id = $1", DM)
        msg = await bridge.messaging.post(
            c, bob, conv, NewMessage("hi <3", formatted_content="<b>hi</b>"), origin=Origin.NETWORK
        )
    lane = f"conv:{conv}"
    sends = [(ln, s, p) for ln, s, p in bridge.outbox.of("send") if s == ghost]
    assert len(sends) == 1
    sent_lane, _s, payload = sends[0]
    assert sent_lane == lane and payload["room_id"] == DM and payload["message_id"] == str(msg.id)
    assert payload["content"]["body"] == "hi <3"
    assert payload["content"]["formatted_body"] == "<b>hi</b>"
    assert bridge.outbox.of("profile")[0][2] == {"displayname": "Bob"}
    async with bridge.db.transaction() as c:
        await bridge.messaging.edit(c, bob, msg.id, content="hello")
        await bridge.messaging.delete(c, msg.id, actor=bob, origin=Origin.NETWORK)
    edit = [p for _, s, p in bridge.outbox.of("send") if s == ghost][1]
    assert edit["content"]["m.new_content"]["body"] == "hello"
    assert edit["content"]["m.relates_to"]["rel_type"] == "m.replace"
    # The original isn't sent yet: its event id comes from the outbox row that sends it.
    send_row = await conn.fetchval(
        "SELECT id FROM outbox WHERE payload->>'message_id' = $1", str(msg.id)
    )
    assert edit["refs"] == {"/content/m.relates_to/event_id": send_row}
    ((_, sender, redact),) = bridge.outbox.of("redact")
    assert sender == ghost and redact["refs"] == {"/event_id": send_row}


async def test_matrix_users_own_messages_are_not_echoed(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    await open_dm(bridge, bob)
    await bridge.feed(
        {
            "type": "m.room.message",
            "room_id": DM,
            "sender": ALICE,
            "content": {"msgtype": "m.text", "body": "x"},
        }
    )
    assert [s for _, s, _ in bridge.outbox.of("send") if s != bridge.ids.bot] == []


async def test_network_conversation_with_a_matrix_user_gets_a_portal(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob, cat, dan = (
        await bridge.person("Bob"),
        await bridge.person("Cat"),
        await bridge.person("Dan"),
    )
    async with bridge.db.transaction() as c:
        alice = (await bridge.users.for_matrix_user(c, ALICE)).id
        for other in (cat, dan, alice):
            await bridge.networking.connect_directly(c, bob, other)
        conv = await bridge.messaging.create_group(
            c, bob, [cat, alice], title="Plans", origin=Origin.NETWORK
        )
        lonely = await bridge.messaging.create_group(
            c, bob, [cat, dan], title="No Matrix", origin=Origin.NETWORK
        )
    ((lane, sender, payload),) = bridge.outbox.of("create_room")
    assert lane == f"conv:{conv.id}" and sender == bridge.ids.bot
    assert payload["conversation_id"] == str(conv.id) and payload["name"] == "Plans"
    assert payload["alias_localpart"] == f"_pn_conv_{conv.id}"
    assert set(payload["invite"]) == {bridge.ids.ghost(bob), bridge.ids.ghost(cat), ALICE}
    joins = [(ln, s) for ln, s, _ in bridge.outbox.of("join")]
    assert set(joins) == {
        (f"conv:{conv.id}", bridge.ids.ghost(bob)),
        (f"conv:{conv.id}", bridge.ids.ghost(cat)),
    }
    assert all(str(lonely.id) not in lane for lane, _, _, _ in bridge.outbox.actions)


async def test_request_to_a_matrix_user_invites_and_join_accepts(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    bob = await bridge.person("Bob")
    mgmt = "!mgmt:localhost"
    await bridge.feed(member(mgmt, ALICE, bridge.ids.bot, "invite", is_direct=True))
    async with bridge.db.transaction() as c:
        alice = (await bridge.users.for_matrix_user(c, ALICE)).id
        request, _ = await bridge.networking.send_request(c, bob, alice, message="Hello Alice")
    ((_lane, sender, payload),) = bridge.outbox.of("create_room")
    assert sender == bridge.ids.ghost(bob) and payload["invite"] == [ALICE] and payload["is_direct"]
    assert payload["connection_request_id"] == str(request.id)
    assert any("wants to connect" in n and "Hello Alice" in n for n in bridge.outbox.notices())
    # The outbox created the room (as its on_sent hook records), then Alice joins it.
    room = "!req:localhost"
    async with bridge.db.transaction() as c:
        await bridge.networking.set_request_room(c, request.id, room)
    await bridge.feed(member(room, ALICE, ALICE, "join"))
    assert await conn.fetchval("SELECT status FROM connection_request") == "accepted"
    assert await conn.fetchval("SELECT count(*) FROM connection") == 1
    assert await conn.fetchval("SELECT count(*) FROM portal WHERE room_id = $1", room) == 1


async def test_leaving_the_invite_rejects(bridge: Bridge, conn: asyncpg.Connection) -> None:
    bob = await bridge.person("Bob")
    async with bridge.db.transaction() as c:
        alice = (await bridge.users.for_matrix_user(c, ALICE)).id
        request, _ = await bridge.networking.send_request(c, bob, alice)
        await bridge.networking.set_request_room(c, request.id, "!req:localhost")
    await bridge.feed(member("!req:localhost", ALICE, ALICE, "leave"))
    assert await conn.fetchval("SELECT status FROM connection_request") == "rejected"
    assert (
        ("!req:localhost", bridge.ids.ghost(bob), {"room_id": "!req:localhost"})
    ) in bridge.outbox.of("leave")


async def test_other_notifications_reach_the_management_room(
    bridge: Bridge, conn: asyncpg.Connection
) -> None:
    mgmt = "!mgmt:localhost"
    await bridge.feed(member(mgmt, ALICE, bridge.ids.bot, "invite", is_direct=True))
    async with bridge.db.transaction() as c:
        alice = (await bridge.users.for_matrix_user(c, ALICE)).id
        await bridge.notifications.notify(
            c, [alice], kind="system", title="Welcome", body="to the network"
        )
        await bridge.notifications.notify(
            c, [alice], kind="message", title="New message", body="seen in Matrix"
        )
    notices = bridge.outbox.notices()
    assert "Welcome: to the network" in notices
    assert not any("seen in Matrix" in n for n in notices)
