"""Matrix to network: what Matrix users do through a real Synapse lands in the network's tables.

Each scenario acts with a real client and checks the bridge's database (the domain tables, the
inbox's verdicts, the outbox), not only what the homeserver answered. Network users, their
connections and conversations are set up in the bridge's database, as an operator or the
network side would make them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest
from mautrix.appservice import IntentAPI
from mautrix.client import ClientAPI
from mautrix.types import (
    EventID,
    EventType,
    MessageType,
    RoomID,
    RoomNameStateEventContent,
    RoomTopicStateEventContent,
    TextMessageEventContent,
)

from tests.e2e.bed import (
    BOT_MXID,
    Inbox,
    Network,
    ghost_of,
    membership_of,
    notices,
    portal_alias,
    timeline,
    wait_membership,
    wait_notice,
    wait_until,
)

pytestmark = pytest.mark.e2e

#: Bounds for one step of a scenario (a join, a notice, a batch of events processed).
STEP = 30.0

NewUser = Callable[[str], Awaitable[ClientAPI]]


def _event(row: asyncpg.Record) -> dict[str, Any]:
    value = row["event"]
    return json.loads(value) if isinstance(value, str) else dict(value)


async def _message(inbox: Inbox, event_id: str) -> asyncpg.Record:
    rows = await inbox.fetch("SELECT * FROM message WHERE event_id = $1", event_id)
    assert len(rows) == 1, f"one message row for {event_id}, found {len(rows)}"
    return rows[0]


async def _processed(inbox: Inbox, event_ids: list[str]) -> None:
    """Every event reached the inbox and was handled (not ignored, not dead-lettered)."""
    rows = await inbox.wait_processed(event_ids, within=STEP)
    verdicts = {r["event_id"]: (r["event_type"], r["state"]) for r in rows}
    assert {e: s for e, (_, s) in verdicts.items() if s != "processed"} == {}, verdicts
    assert not await inbox.fetch(
        "SELECT event_id, error FROM dead_letter WHERE event_id = ANY($1::text[])", event_ids
    )


# ---------------------------------------------------------------------------- 1. connected DM


async def test_direct_chat_with_a_connection_bridges_messages(
    alice: ClientAPI, appservice: IntentAPI, inbox: Inbox, network: Network
) -> None:
    me = await network.identity_of(alice.mxid)
    bob = await network.add_user("Bob Connected")
    await network.connect(me, bob)
    ghost = ghost_of(bob)

    room_id = await alice.create_room(is_direct=True, invitees=[ghost], name=None)

    # The ghost accepts: seen by alice's client, and the room is the pair's 1:1 portal.
    await wait_membership(alice, room_id, ghost, "join", within=STEP)
    portal = await inbox.fetch("SELECT * FROM portal WHERE room_id = $1", room_id)
    assert len(portal) == 1
    conversation_id = portal[0]["conversation_id"]
    conversation = await inbox.fetch("SELECT * FROM conversation WHERE id = $1", conversation_id)
    low, high = sorted((me, bob))
    assert conversation[0]["is_group"] is False
    assert conversation[0]["direct_key"] == f"{low}:{high}"
    participants = await inbox.fetch(
        "SELECT user_id FROM conversation_participant WHERE conversation_id = $1", conversation_id
    )
    assert {r["user_id"] for r in participants} == {me, bob}
    invite = await inbox.fetch(
        "SELECT state FROM inbox WHERE lane = $1 AND event_type = 'm.room.member' "
        "AND event->>'state_key' = $2 AND event->'content'->>'membership' = 'invite'",
        room_id,
        ghost,
    )
    assert [r["state"] for r in invite] == ["processed"]

    async def send(content: dict[str, Any], event_type: EventType = EventType.ROOM_MESSAGE) -> str:
        return str(await alice.send_message_event(room_id, event_type, cast(Any, content)))

    plain = await send({"msgtype": "m.text", "body": "hello bob"})
    html = await send(
        {
            "msgtype": "m.text",
            "body": "bold move",
            "format": "org.matrix.custom.html",
            "formatted_body": '<b>bold</b> move<script>alert("pwned")</script>'
            '<a href="javascript:alert(1)" onclick="x()">link</a>',
        }
    )
    emote = await send({"msgtype": "m.emote", "body": "waves"})
    edit = await send(
        {
            "msgtype": "m.text",
            "body": "* hello again, bob",
            "m.new_content": {"msgtype": "m.text", "body": "hello again, bob"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": plain},
        }
    )
    reply = await send(
        {
            "msgtype": "m.text",
            "body": "about that bold move",
            "m.relates_to": {"m.in_reply_to": {"event_id": html}},
        }
    )
    thumbs = await send(
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": emote, "key": "👍"}},
        EventType.REACTION,
    )
    oops = await send({"msgtype": "m.text", "body": "oops, wrong chat"})
    withdrawn = await send(
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": emote, "key": "👎"}},
        EventType.REACTION,
    )
    redact_oops = str(await alice.redact(room_id, EventID(oops), reason="wrong chat"))
    redact_reaction = str(await alice.redact(room_id, EventID(withdrawn)))

    await _processed(
        inbox,
        [plain, html, emote, edit, reply, thumbs, oops, withdrawn, redact_oops, redact_reaction],
    )

    # Plain text, edited once: new content, editedAt, recordVersion 2; the edit is no message.
    first = await _message(inbox, plain)
    assert first["conversation_id"] == conversation_id
    assert first["sender_id"] == me
    assert first["origin"] == "matrix"
    assert first["content"] == "hello again, bob"
    assert first["edited_at"] is not None
    assert first["record_version"] == 2
    assert first["is_active"] is True
    assert not await inbox.fetch("SELECT 1 FROM message WHERE event_id = $1", edit)
    assert await inbox.fetch(
        "SELECT kind FROM message_event WHERE event_id = $1 AND message_id = $2", edit, first["id"]
    )

    # HTML: the script and the javascript: link are gone, the allowed markup kept.
    formatted = await _message(inbox, html)
    assert formatted["content"] == "bold move"
    assert formatted["format"] == "org.matrix.custom.html"
    assert "<b>bold</b> move" in formatted["formatted_content"]
    for bad in ("script", "pwned", "javascript", "onclick"):
        assert bad not in formatted["formatted_content"], formatted["formatted_content"]
    assert formatted["edited_at"] is None and formatted["record_version"] == 1

    action = await _message(inbox, emote)
    assert (action["msgtype"], action["content"]) == ("m.emote", "waves")

    answer = await _message(inbox, reply)
    assert answer["reply_to_message_id"] == formatted["id"]
    assert answer["content"] == "about that bold move"

    # Redacted: a tombstone for everyone; the withdrawn reaction is gone, the other one stays.
    gone = await _message(inbox, oops)
    assert gone["is_active"] is False
    reactions = await inbox.fetch(
        "SELECT user_id, key, event_id FROM reaction WHERE message_id = $1", action["id"]
    )
    assert [(r["user_id"], r["key"], r["event_id"]) for r in reactions] == [(me, "👍", thumbs)]

    # The conversation moved on, and bob (on the network) was told about the messages.
    last = await inbox.fetchval(
        "SELECT last_message_at FROM conversation WHERE id = $1", conversation_id
    )
    assert last is not None
    told = await inbox.fetch(
        "SELECT payload->>'messageId' AS message_id FROM notification "
        "WHERE user_id = $1 AND kind = 'message'",
        bob,
    )
    assert str(first["id"]) in {r["message_id"] for r in told}

    # A message from bob: sent in the room by his ghost, as the bridge would when bob posts on
    # the network, and recorded as the network's message with that event.
    from_bob = str(
        await appservice.user(ghost).send_message_event(
            room_id,
            EventType.ROOM_MESSAGE,
            TextMessageEventContent(msgtype=MessageType.TEXT, body="hi alice"),
        )
    )
    bobs_id = uuid.uuid4()
    await inbox.fetch(
        "INSERT INTO message (id, conversation_id, sender_id, content, sent_at, origin, event_id) "
        "VALUES ($1, $2, $3, 'hi alice', $4, 'network', $5)",
        bobs_id,
        conversation_id,
        bob,
        datetime.now(UTC),
        from_bob,
    )
    # Alice reads it: her read receipt (an ephemeral event) moves her read marker there.
    await alice.send_receipt(room_id, EventID(from_bob))

    async def marker() -> asyncpg.Record | None:
        rows = await inbox.fetch(
            "SELECT * FROM read_marker WHERE conversation_id = $1 AND user_id = $2",
            conversation_id,
            me,
        )
        return rows[0] if rows else None

    read = await wait_until(marker, within=STEP, what="alice's read marker on bob's message")
    assert read["message_id"] == bobs_id
    receipts = await inbox.fetch(
        "SELECT * FROM inbox WHERE lane = $1 AND event_type = 'm.receipt' ORDER BY id", room_id
    )
    mine = [
        r
        for r in receipts
        if from_bob in _event(r).get("content", {})
        and alice.mxid in _event(r)["content"][from_bob].get("m.read", {})
    ]
    assert mine and mine[-1]["kind"] == "edu" and mine[-1]["state"] == "processed"
    # The ghost's own message is an echo: kept in the inbox, ignored.
    echo = await inbox.wait_processed([from_bob], within=STEP)
    assert echo[0]["state"] == "ignored"
    assert await inbox.fetchval("SELECT count(*) FROM message WHERE event_id = $1", from_bob) == 1


# ---------------------------------------------------------------------------- 2. unconnected DM


async def test_direct_chat_with_a_stranger_sends_a_connection_request(
    new_matrix_user: NewUser, inbox: Inbox, network: Network
) -> None:
    erin = await new_matrix_user("erin")
    carl = await network.add_user("Carl Stranger")
    ghost = ghost_of(carl)
    assert await inbox.fetch("SELECT 1 FROM management_room WHERE user_id = $1", erin.mxid) == []

    # A direct chat with the ghost, the invite carrying a reason (as a client's "invite with a
    # message" does: the member event itself, with is_direct and reason).
    room_id = await erin.create_room(name=None)
    invite = str(
        await erin.send_state_event(
            room_id,
            EventType.ROOM_MEMBER,
            cast(Any, {"membership": "invite", "is_direct": True, "reason": "Let's work together"}),
            state_key=ghost,
        )
    )
    await _processed(inbox, [invite])

    me = await network.find_identity(erin.mxid)
    assert me is not None, "the inviter got a network identity"
    requests = await inbox.fetch(
        "SELECT * FROM connection_request WHERE sender_id = $1 AND receiver_id = $2", me, carl
    )
    assert len(requests) == 1
    request = requests[0]
    assert request["status"] == "pending"
    assert request["message"] == "Let's work together"
    assert request["room_id"] == room_id
    assert request["request_counter"] == 1
    # No conversation yet, no portal, no connection.
    assert await inbox.fetch("SELECT 1 FROM portal WHERE room_id = $1", room_id) == []
    assert (
        await inbox.fetch(
            "SELECT 1 FROM connection WHERE $1 IN (user_low, user_high) AND $2 IN (user_low, user_high)",
            me,
            carl,
        )
        == []
    )

    # The bot opens a management room with erin (she had none) and tells her there.
    async def management_room() -> str | None:
        room: str | None = await inbox.fetchval(
            "SELECT room_id FROM management_room WHERE user_id = $1", erin.mxid
        )
        return room

    mgmt = RoomID(
        await wait_until(management_room, within=STEP, what=f"a management room for {erin.mxid}")
    )

    async def invited() -> bool:
        sync = await erin.sync(timeout=0)
        return mgmt in (sync.get("rooms", {}).get("invite") or {})

    await wait_until(invited, within=STEP, what=f"erin's invite to {mgmt} in her sync")
    await erin.join_room_by_id(mgmt)
    body, _ = await wait_notice(
        erin, mgmt, lambda text: str(request["id"]) in text, what="the pending-request notice"
    )
    assert "Carl Stranger" in body and "pending" in body
    sent = await inbox.fetch(
        "SELECT action, state FROM outbox WHERE lane = $1 AND action = 'send' "
        "AND payload->'content'->>'body' = $2",
        mgmt,
        body,
    )
    assert [(r["action"], r["state"]) for r in sent] == [("send", "sent")]
    created = await inbox.fetch(
        "SELECT state, result FROM outbox WHERE lane = $1 AND action = 'create_room'",
        f"management:{erin.mxid}",
    )
    assert len(created) == 1 and created[0]["state"] == "sent"

    # The ghost was not made to join (nor to decline): it stays invited.
    assert await membership_of(erin, room_id, ghost) == "invite"
    ghost_actions = await inbox.fetch(
        "SELECT action FROM outbox WHERE sender = $1 AND payload->>'room_id' = $2", ghost, room_id
    )
    assert ghost_actions == []


# ---------------------------------------------------------------------------- 3. portal by alias


# Synapse 1.163 creates rooms of version 12 by default, where the creator's power is implied
# and createRoom refuses a creator listed in power_levels.users: this runs on that default.
async def test_joining_a_conversation_alias_creates_its_portal(
    alice: ClientAPI, inbox: Inbox, network: Network
) -> None:
    me = await network.identity_of(alice.mxid)
    dana = await network.add_user("Dana Group")
    eve = await network.add_user("Eve Group")
    conversation_id = await network.group(
        dana, [dana, eve, me], title="Quarterly planning", topic="Numbers and plans"
    )
    assert (
        await inbox.fetch("SELECT 1 FROM portal WHERE conversation_id = $1", conversation_id) == []
    )

    room_id = await alice.join_room(portal_alias(conversation_id), max_retries=0)

    portal = await inbox.fetch("SELECT * FROM portal WHERE conversation_id = $1", conversation_id)
    assert len(portal) == 1
    assert portal[0]["room_id"] == room_id
    assert portal[0]["alias"] == portal_alias(conversation_id)
    name = await alice.get_state_event(room_id, EventType.ROOM_NAME)
    topic = await alice.get_state_event(room_id, EventType.ROOM_TOPIC)
    assert isinstance(name, RoomNameStateEventContent)
    assert isinstance(topic, RoomTopicStateEventContent)
    assert name.name == "Quarterly planning"
    assert topic.topic == "Numbers and plans"
    # The network participants are in the room already (made before the alias was answered).
    members = await alice.get_joined_members(room_id)
    assert {ghost_of(dana), ghost_of(eve), alice.mxid, BOT_MXID} <= set(members)
    ghosts = await inbox.fetch(
        "SELECT user_id, network_user_id, registered_at FROM ghost "
        "WHERE network_user_id = ANY($1::uuid[])",
        [dana, eve],
    )
    assert {r["user_id"] for r in ghosts} == {ghost_of(dana), ghost_of(eve)}
    assert all(r["registered_at"] is not None for r in ghosts)
    assert (
        members[ghost_of(dana)].displayname and "Dana Group" in members[ghost_of(dana)].displayname
    )
    # Alice's join reaches the bridge and changes nothing: she was a participant already.
    joins = await inbox.fetch(
        "SELECT event_id FROM inbox WHERE lane = $1 AND event_type = 'm.room.member' "
        "AND event->>'state_key' = $2",
        room_id,
        alice.mxid,
    )
    assert joins
    await inbox.wait_processed([r["event_id"] for r in joins], within=STEP)
    participants = await inbox.fetch(
        "SELECT user_id FROM conversation_participant WHERE conversation_id = $1", conversation_id
    )
    assert {r["user_id"] for r in participants} == {dana, eve, me}


# ---------------------------------------------------------------------------- 4. management room


async def test_management_room_answers_commands(
    new_matrix_user: NewUser, inbox: Inbox, network: Network
) -> None:
    carol = await new_matrix_user("carol")
    frank = await network.add_user("Frank Target")

    room_id = await carol.create_room(is_direct=True, invitees=[BOT_MXID], name=None)
    await wait_membership(carol, room_id, BOT_MXID, "join", within=STEP)
    managed = await inbox.fetchval(
        "SELECT room_id FROM management_room WHERE user_id = $1", carol.mxid
    )
    assert managed == room_id
    me = await network.find_identity(carol.mxid)
    assert me is not None
    _, welcome = await wait_notice(
        carol, room_id, lambda text: "management room" in text, what="the welcome notice"
    )

    async def command(line: str, expect: Callable[[str], bool], after: int) -> tuple[str, int]:
        event_id = str(await carol.send_text(room_id, line))
        body, index = await wait_notice(
            carol, room_id, expect, after=after, what=f"the answer to {line!r}"
        )
        rows = await inbox.rows_for([event_id])
        assert [r["state"] for r in rows] == ["processed"], line
        return body, index

    body, index = await command("help", lambda text: text.startswith("Commands:"), welcome + 1)
    for name in (
        "whoami",
        "connect <user> [message]",
        "requests",
        "accept",
        "reject",
        "cancel",
        "connections",
        "disconnect",
        "notifications",
        "seen",
    ):
        assert name in body

    body, index = await command("whoami", lambda text: text.startswith("You are"), index + 1)
    assert str(me) in body and carol.mxid in body

    body, index = await command(
        f"connect {frank} hi", lambda text: "Connection request" in text, index + 1
    )
    requests = await inbox.fetch(
        "SELECT * FROM connection_request WHERE sender_id = $1 AND receiver_id = $2", me, frank
    )
    assert len(requests) == 1
    assert requests[0]["status"] == "pending"
    assert requests[0]["message"] == "hi"
    assert str(requests[0]["id"]) in body and "Frank Target" in body

    # Every answer is an m.notice from the bot, and nothing else came from it.
    from_bot = [
        e
        for e in await timeline(carol, room_id)
        if e["sender"] == BOT_MXID and e["type"] == "m.room.message"
    ]
    assert len(from_bot) == len(await notices(carol, room_id)) == index + 1
