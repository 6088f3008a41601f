"""Network to Matrix: what network users do over the REST API shows in a real Matrix client.

Network users act through the bridge's REST API over real HTTP, with JWTs minted from the bed's
shared secret; the Matrix side is a real Synapse and real mautrix clients. Each scenario checks
what the Matrix user sees (invites, the ghosts' events, edits, redactions) and what the bridge
recorded (its domain tables, the outbox, the REST API's answers), not only HTTP statuses.
"""

from __future__ import annotations

import json
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
import yaml
from mautrix.api import Method
from mautrix.api import Path as ApiPath
from mautrix.client import ClientAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, EventType, RoomID

from tests.e2e.bed import (
    BOT_LOCALPART,
    BOT_MXID,
    PROCESSES,
    REPO_ROOT,
    SERVER_NAME,
    BridgeProcess,
    Inbox,
    Network,
    RestApi,
    child_env,
    free_port,
    ghost_of,
    invite_of,
    membership_of,
    portal_alias,
    timeline,
    wait_invite,
    wait_membership,
    wait_notice,
    wait_until,
)

pytestmark = pytest.mark.e2e

#: Bounds for one step of a scenario (a room made, an event seen, a request answered).
STEP = 30.0

NewUser = Callable[[str], Awaitable[ClientAPI]]

CONVERSATIONS = "/messaging-api/v1/conversations"
MESSAGES = "/messaging-api/v1/messages"
REQUESTS = "/networking-api/v1/connectionrequests"
CONNECTIONS = "/networking-api/v1/connections"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _outbox(inbox: Inbox, where: str, *args: Any) -> list[asyncpg.Record]:
    return await inbox.fetch(f"SELECT * FROM outbox WHERE {where} ORDER BY id", *args)


async def _settled(inbox: Inbox, lane: str) -> list[asyncpg.Record]:
    """The lane's outbox rows once none is pending any more (a client may see an event
    before the bridge has committed the row that sent it)."""

    async def done() -> list[asyncpg.Record] | None:
        rows = await _outbox(inbox, "lane = $1", lane)
        return rows if rows and all(r["state"] != "pending" for r in rows) else None

    return await wait_until(done, within=STEP, what=f"the outbox lane {lane} sent")


async def _event_from(
    client: ClientAPI,
    room_id: RoomID,
    matches: Callable[[dict[str, Any]], bool],
    *,
    what: str,
) -> dict[str, Any]:
    """The first event of the room's timeline (as ``client`` sees it) that ``matches``."""
    seen: list[str] = []

    async def found() -> dict[str, Any] | None:
        events = await timeline(client, room_id)
        seen[:] = [f"{e.get('type')} from {e.get('sender')}" for e in events][-10:]
        return next((e for e in events if matches(e)), None)

    return await wait_until(
        found, within=STEP, what=lambda: f"{what} in {room_id} (latest events: {seen})"
    )


async def _raw_event(client: ClientAPI, room_id: RoomID, event_id: str) -> dict[str, Any]:
    """``GET /rooms/{roomId}/event/{eventId}`` as the client sees it, unparsed."""
    event = await client.api.request(Method.GET, ApiPath.v3.rooms[room_id].event[EventID(event_id)])
    assert isinstance(event, dict)
    return event


async def _processed(inbox: Inbox, event_ids: list[str]) -> None:
    """Every event reached the bridge's inbox and was handled (not ignored, not dead)."""
    rows = await inbox.wait_processed(event_ids, within=STEP)
    assert {r["event_id"]: r["state"] for r in rows} == dict.fromkeys(event_ids, "processed")
    assert not await inbox.fetch(
        "SELECT 1 FROM dead_letter WHERE event_id = ANY($1::text[])", event_ids
    )


@dataclass
class Portal:
    """A 1:1 conversation made over REST by a network user with a Matrix user, bridged."""

    alice: ClientAPI
    me: uuid.UUID  # alice's network identity
    bob: uuid.UUID  # the network user
    conversation_id: uuid.UUID
    room_id: RoomID
    invite: dict[str, Any]  # alice's invite event, as her sync showed it


async def _open_portal(
    new_matrix_user: NewUser,
    inbox: Inbox,
    network: Network,
    rest: RestApi,
    name: str,
    *,
    first: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]] | None = None,
) -> Portal:
    """Bob (network) opens a 1:1 conversation with alice (Matrix) over REST; alice joins.

    ``first(bob, conversation_id)`` runs right after the conversation is made, before its
    portal room exists.
    """
    alice = await new_matrix_user("alice")
    me = await network.identity_of(alice.mxid, f"Alice of {name}")
    bob = await network.add_user(f"Bob {name}")
    await network.connect(bob, me)  # a 1:1 conversation needs a connection

    created = await rest.post(
        CONVERSATIONS, {"isGroup": False, "participantIds": [str(bob), str(me)]}, as_user=bob
    )
    assert created.status == 201, created.body
    conversation = created.data("conversation")
    conversation_id = uuid.UUID(conversation["id"])
    assert conversation["isGroup"] is False
    assert set(conversation["participantIds"]) == {str(bob), str(me)}
    if first is not None:
        await first(bob, conversation_id)

    async def portal_row() -> asyncpg.Record | None:
        rows = await inbox.fetch("SELECT * FROM portal WHERE conversation_id = $1", conversation_id)
        return rows[0] if rows else None

    portal = await wait_until(
        portal_row, within=STEP, what=f"the portal of conversation {conversation_id}"
    )
    room_id = RoomID(portal["room_id"])
    invite = await wait_invite(alice, room_id, within=STEP)
    await alice.join_room_by_id(room_id)
    await wait_membership(alice, room_id, ghost_of(bob), "join", within=STEP)
    return Portal(alice, me, bob, conversation_id, room_id, invite)


async def _post(
    rest: RestApi, sender: uuid.UUID, conversation_id: uuid.UUID, content: str, **extra: Any
) -> dict[str, Any]:
    reply = await rest.post(
        MESSAGES,
        {"conversationId": str(conversation_id), "content": content, **extra},
        as_user=sender,
    )
    assert reply.status == 201, reply.body
    message: dict[str, Any] = reply.data("message")
    assert message["content"] == content
    assert message["senderUserId"] == str(sender)
    return message


async def _event_id_of(inbox: Inbox, message_id: str) -> str:
    """The Matrix event id recorded on a network message once its send went out."""

    async def recorded() -> str | None:
        value: str | None = await inbox.fetchval(
            "SELECT event_id FROM message WHERE id = $1", uuid.UUID(message_id)
        )
        return value

    return await wait_until(
        recorded, within=STEP, what=f"the event id of message {message_id} in the DB"
    )


# ---------------------------------------------------------------------------- 1. create + post


async def test_rest_conversation_and_message_reach_the_matrix_user(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    posted: list[dict[str, Any]] = []

    async def post_at_once(bob: uuid.UUID, conversation_id: uuid.UUID) -> None:
        # Before the portal room exists: the send waits for it in the conversation's lane.
        posted.append(await _post(rest, bob, conversation_id, "Hello Alice, from the network"))

    p = await _open_portal(new_matrix_user, inbox, network, rest, "Creates", first=post_at_once)
    alice, ghost = p.alice, ghost_of(p.bob)
    [message] = posted

    # The bot made the room and invited alice to a direct chat; the portal has its alias.
    assert p.invite["sender"] == BOT_MXID
    assert p.invite["content"].get("is_direct") is True
    assert (await alice.resolve_room_alias(portal_alias(p.conversation_id))).room_id == p.room_id
    members = await alice.get_joined_members(p.room_id)
    assert {BOT_MXID, ghost, alice.mxid} <= set(members)
    assert members[ghost].displayname and "Bob Creates" in members[ghost].displayname
    portal = await inbox.fetch("SELECT * FROM portal WHERE room_id = $1", p.room_id)
    assert portal[0]["alias"] == portal_alias(p.conversation_id)
    # The conversation as the network sees it: both participants, readable by bob.
    got = await rest.get(f"{CONVERSATIONS}/{p.conversation_id}", as_user=p.bob)
    assert set(got.data("conversation")["participantIds"]) == {str(p.bob), str(p.me)}

    # Bob's message: his ghost sent it after joining, and the row got the Matrix event id.
    event = await _event_from(
        alice,
        p.room_id,
        lambda e: e["type"] == "m.room.message" and e["sender"] == ghost,
        what="bob's message from his ghost",
    )
    assert event["content"]["body"] == "Hello Alice, from the network"
    assert event["content"]["msgtype"] == "m.text"
    assert await _event_id_of(inbox, message["id"]) == event["event_id"]
    row = await inbox.fetch(
        "SELECT origin, sender_id, conversation_id FROM message WHERE id = $1",
        uuid.UUID(message["id"]),
    )
    assert (row[0]["origin"], row[0]["sender_id"], row[0]["conversation_id"]) == (
        "network",
        p.bob,
        p.conversation_id,
    )
    sends = await _outbox(
        inbox,
        "lane = $1 AND action = 'send' AND payload->>'message_id' = $2",
        f"conv:{p.conversation_id}",
        message["id"],
    )
    assert [(r["sender"], r["state"], r["attempts"]) for r in sends] == [(ghost, "sent", 0)]
    assert _json(sends[0]["result"]) == {"event_id": event["event_id"], "room_id": p.room_id}
    lane = await _outbox(inbox, "lane = $1", f"conv:{p.conversation_id}")
    assert [(r["action"], r["sender"], r["state"]) for r in lane] == [
        ("create_room", BOT_MXID, "sent"),
        ("join", ghost, "sent"),
        ("send", ghost, "sent"),
    ]
    assert _json(lane[0]["result"])["room_id"] == p.room_id
    ghost_events = [
        e["event_id"]
        for e in await timeline(alice, p.room_id)
        if e["sender"] == ghost and e["type"] == "m.room.message"
    ]
    assert ghost_events == [event["event_id"]]
    # The ghost's own message comes back to the bridge as an echo, and changes nothing.
    echo = await inbox.wait_processed([event["event_id"]], within=STEP)
    assert echo[0]["state"] == "ignored"
    assert (
        await inbox.fetchval(
            "SELECT count(*) FROM message WHERE conversation_id = $1", p.conversation_id
        )
        == 1
    )


# ---------------------------------------------------------------------------- 2. Matrix replies


async def test_matrix_reply_in_a_rest_made_portal_shows_in_the_rest_list(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    p = await _open_portal(new_matrix_user, inbox, network, rest, "Listens")
    alice = p.alice
    first = await _post(rest, p.bob, p.conversation_id, "Are you there?")
    first_event = await _event_id_of(inbox, first["id"])

    content: dict[str, Any] = {
        "msgtype": "m.text",
        "body": "Yes, here from Matrix",
        "m.relates_to": {"m.in_reply_to": {"event_id": first_event}},
    }
    reply_event = str(
        await alice.send_message_event(p.room_id, EventType.ROOM_MESSAGE, cast(Any, content))
    )
    await _processed(inbox, [reply_event])

    listed = await rest.get(
        MESSAGES, as_user=p.bob, params={"conversationId": str(p.conversation_id)}
    )
    messages = listed.data("messages")
    by_content = {m["content"]: m for m in messages}
    assert set(by_content) == {"Are you there?", "Yes, here from Matrix"}, messages
    reply = by_content["Yes, here from Matrix"]
    assert reply["senderUserId"] == str(p.me)
    assert reply["conversationId"] == str(p.conversation_id)
    assert reply["replyToMessageId"] == first["id"]
    assert reply["isActive"] is True
    assert by_content["Are you there?"]["senderUserId"] == str(p.bob)
    row = await inbox.fetch(
        "SELECT id, origin, sender_id FROM message WHERE event_id = $1", reply_event
    )
    assert [(str(r["id"]), r["origin"], r["sender_id"]) for r in row] == [
        (reply["id"], "matrix", p.me)
    ]
    # Alice's own words are not echoed back into the room by a ghost or the bot.
    from_bridge = await _outbox(inbox, "lane = $1 AND action = 'send'", f"conv:{p.conversation_id}")
    assert [_json(r["payload"]).get("message_id") for r in from_bridge] == [first["id"]]
    # The same list, filtered by sender, through the REST API's filters.
    mine = await rest.get(
        MESSAGES,
        as_user=p.bob,
        params={"conversationId": str(p.conversation_id), "senderUserId": str(p.me)},
    )
    assert [m["id"] for m in mine.data("messages")] == [reply["id"]]

    # Bob answers her over REST, replying to her message and mentioning her: in Matrix the
    # reply points at her event and the mention names her MXID (not a ghost of hers).
    answer = await _post(
        rest,
        p.bob,
        p.conversation_id,
        "Great, Alice!",
        replyToMessageId=reply["id"],
        mentions=[str(p.me)],
    )
    assert answer["replyToMessageId"] == reply["id"]
    answered = await _event_from(
        alice,
        p.room_id,
        lambda e: e["type"] == "m.room.message" and e["content"].get("body") == "Great, Alice!",
        what="bob's reply",
    )
    assert answered["sender"] == ghost_of(p.bob)
    assert answered["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == reply_event
    assert answered["content"]["m.mentions"] == {"user_ids": [alice.mxid]}
    assert await _event_id_of(inbox, answer["id"]) == answered["event_id"]


# ---------------------------------------------------------------------------- 3. edit + delete


async def test_rest_edit_and_delete_reach_the_matrix_user(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    p = await _open_portal(new_matrix_user, inbox, network, rest, "Edits")
    alice, ghost = p.alice, ghost_of(p.bob)
    message = await _post(rest, p.bob, p.conversation_id, "Meet at 10?")
    original = await _event_id_of(inbox, message["id"])

    edited = await rest.patch(
        f"{MESSAGES}/{message['id']}", {"content": "Meet at 11?"}, as_user=p.bob
    )
    changed = edited.data("message")
    assert changed["content"] == "Meet at 11?"
    assert changed["editedAt"] is not None
    assert changed["recordVersion"] == 2

    edit = await _event_from(
        alice,
        p.room_id,
        lambda e: (
            e["type"] == "m.room.message"
            and (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
        ),
        what="the edit from bob's ghost",
    )
    assert edit["sender"] == ghost
    assert edit["content"]["m.relates_to"]["event_id"] == original
    assert edit["content"]["m.new_content"]["body"] == "Meet at 11?"
    assert edit["content"]["body"] == "* Meet at 11?"

    deleted = await rest.delete(f"{MESSAGES}/{message['id']}", as_user=p.bob)
    gone = deleted.data("message")
    assert gone["isActive"] is False and gone["content"] == ""

    redaction = await _event_from(
        alice,
        p.room_id,
        lambda e: e["type"] == "m.room.redaction",
        what="the redaction from bob's ghost",
    )
    assert redaction["sender"] == ghost
    assert original in (redaction.get("redacts"), redaction["content"].get("redacts"))
    redacted = await _raw_event(alice, p.room_id, original)
    assert (redacted.get("unsigned") or {}).get("redacted_because") is not None
    assert redacted["content"] == {}
    # The bridge's records: the message is a tombstone; every action went out once.
    row = await inbox.fetch(
        "SELECT is_active, content, record_version FROM message WHERE id = $1",
        uuid.UUID(message["id"]),
    )
    assert row[0]["is_active"] is False
    settled = await _settled(inbox, f"conv:{p.conversation_id}")
    lane = [r for r in settled if r["sender"] == ghost]
    assert [(r["action"], r["state"]) for r in lane] == [
        ("join", "sent"),
        ("send", "sent"),
        ("send", "sent"),
        ("redact", "sent"),
    ]
    assert _json(lane[2]["result"])["event_id"] == edit["event_id"]
    assert _json(lane[3]["result"])["event_id"] == redaction["event_id"]
    # Over REST: the list holds active messages only; the message itself is a tombstone.
    listed = await rest.get(
        MESSAGES, as_user=p.bob, params={"conversationId": str(p.conversation_id)}
    )
    assert listed.data("messages") == []
    got = (await rest.get(f"{MESSAGES}/{message['id']}", as_user=p.me)).data("message")
    assert (got["isActive"], got["content"], got["recordVersion"]) == (False, "", 3)


async def test_rest_edit_and_delete_right_after_posting_follow_the_send(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    """An edit and a delete made before the message's event exists point at it once sent."""
    p = await _open_portal(new_matrix_user, inbox, network, rest, "Hurries")
    alice, ghost = p.alice, ghost_of(p.bob)
    kept = await _post(rest, p.bob, p.conversation_id, "typo here")
    fixed = await rest.patch(f"{MESSAGES}/{kept['id']}", {"content": "no typo here"}, as_user=p.bob)
    assert fixed.data("message")["content"] == "no typo here"
    dropped = await _post(rest, p.bob, p.conversation_id, "wrong chat, sorry")
    removed = await rest.delete(f"{MESSAGES}/{dropped['id']}", as_user=p.bob)
    assert removed.data("message")["isActive"] is False

    kept_event = await _event_id_of(inbox, kept["id"])
    dropped_event = await _event_id_of(inbox, dropped["id"])
    edit = await _event_from(
        alice,
        p.room_id,
        lambda e: (e.get("content", {}).get("m.relates_to") or {}).get("rel_type") == "m.replace",
        what="the edit",
    )
    assert edit["sender"] == ghost
    assert edit["content"]["m.relates_to"]["event_id"] == kept_event
    assert edit["content"]["m.new_content"]["body"] == "no typo here"
    redaction = await _event_from(
        alice, p.room_id, lambda e: e["type"] == "m.room.redaction", what="the redaction"
    )
    assert redaction["sender"] == ghost
    assert dropped_event in (redaction.get("redacts"), redaction["content"].get("redacts"))
    settled = await _settled(inbox, f"conv:{p.conversation_id}")
    assert {r["state"] for r in settled} == {"sent"}
    lane = [r for r in settled if r["sender"] == ghost]
    assert [r["action"] for r in lane] == ["join", "send", "send", "send", "redact"]
    # An edit or redaction queued before the event it names existed points at the row that
    # sends that event (resolved when it is sent); one queued after names the event itself.
    edit_row, redact_row = _json(lane[2]["payload"]), _json(lane[4]["payload"])
    assert edit_row.get("refs") == {"/content/m.relates_to/event_id": lane[1]["id"]} or (
        edit_row["content"]["m.relates_to"]["event_id"] == kept_event
    ), edit_row
    assert redact_row.get("refs") == {"/event_id": lane[3]["id"]} or (
        redact_row["event_id"] == dropped_event
    ), redact_row


# ---------------------------------------------------------------------------- 4. connection request


async def _management_room(client: ClientAPI, inbox: Inbox) -> tuple[RoomID, int]:
    """A management room for ``client`` (a direct chat with the bot); its welcome's index."""
    room_id = await client.create_room(is_direct=True, invitees=[BOT_MXID], name=None)
    await wait_membership(client, room_id, BOT_MXID, "join", within=STEP)
    assert (
        await inbox.fetchval("SELECT room_id FROM management_room WHERE user_id = $1", client.mxid)
        == room_id
    )
    _, welcome = await wait_notice(
        client, room_id, lambda text: "management room" in text, what="the welcome notice"
    )
    return room_id, welcome


async def _request_room(inbox: Inbox, request_id: str) -> RoomID:
    async def room() -> str | None:
        value: str | None = await inbox.fetchval(
            "SELECT room_id FROM connection_request WHERE id = $1", uuid.UUID(request_id)
        )
        return value

    return RoomID(
        await wait_until(
            room, within=STEP, what=f"the direct room of connection request {request_id}"
        )
    )


async def _wait_status(
    rest: RestApi, as_user: uuid.UUID, request_id: str, status: str
) -> dict[str, Any]:
    seen: list[Any] = [None]

    async def answered() -> dict[str, Any] | None:
        got = await rest.get(f"{REQUESTS}/{request_id}", as_user=as_user)
        request: dict[str, Any] = got.data("connectionRequest")
        seen[0] = request["status"]
        return request if request["status"] == status else None

    return await wait_until(
        answered,
        within=STEP,
        what=lambda: f"connection request {request_id} {status} over REST (is {seen[0]})",
    )


async def test_rest_connection_request_accepted_by_joining_in_matrix(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    alice = await new_matrix_user("alice")
    me = await network.identity_of(alice.mxid, "Alice Accepts")
    carol = await network.add_user("Carol Asks")
    ghost = ghost_of(carol)
    mgmt, welcome = await _management_room(alice, inbox)

    sent = await rest.post(
        REQUESTS, {"receiverUserId": str(me), "message": "Let's connect"}, as_user=carol
    )
    assert sent.status == 201, sent.body
    request = sent.data("connectionRequest")
    assert (request["senderUserId"], request["receiverUserId"]) == (str(carol), str(me))
    assert request["status"] == "pending" and request["message"] == "Let's connect"

    # Carol's ghost invites alice to a direct room; the bot tells alice in her management room.
    room_id = await _request_room(inbox, request["id"])
    invite = await wait_invite(alice, room_id, within=STEP)
    assert invite["sender"] == ghost
    assert invite["content"].get("is_direct") is True
    body, _ = await wait_notice(
        alice,
        mgmt,
        lambda text: "Carol Asks wants to connect" in text,
        after=welcome + 1,
        what="the connection-request notice",
    )
    assert "Let's connect" in body and request["id"] in body
    created = await _outbox(inbox, "lane = $1", f"request:{request['id']}")
    assert [(r["action"], r["sender"], r["state"]) for r in created] == [
        ("create_room", ghost, "sent")
    ]
    # Still pending while alice has not answered; no connection, no conversation yet.
    assert (await rest.get(f"{REQUESTS}/{request['id']}", as_user=carol)).data("connectionRequest")[
        "status"
    ] == "pending"

    # Alice accepts by joining.
    await alice.join_room_by_id(room_id)
    accepted = await _wait_status(rest, carol, request["id"], "accepted")
    assert accepted["respondedAt"] is not None
    # The receiver sees the same.
    mine = await rest.get(f"{REQUESTS}/{request['id']}", as_user=me)
    assert mine.data("connectionRequest")["status"] == "accepted"
    low, high = sorted((me, carol))
    links = await inbox.fetch(
        "SELECT id FROM connection WHERE user_low = $1 AND user_high = $2", low, high
    )
    assert len(links) == 1
    connections = await rest.get(CONNECTIONS, as_user=carol)
    assert [c["id"] for c in connections.data("connections")] == [str(links[0]["id"])]
    join = await inbox.fetch(
        "SELECT event_id, state FROM inbox WHERE lane = $1 AND event_type = 'm.room.member' "
        "AND event->>'state_key' = $2 AND event->'content'->>'membership' = 'join'",
        room_id,
        alice.mxid,
    )
    assert [r["state"] for r in join] == ["processed"]

    # The room is now the pair's 1:1 portal: carol's next message arrives in it.
    portal = await inbox.fetch("SELECT conversation_id FROM portal WHERE room_id = $1", room_id)
    assert len(portal) == 1
    conversation_id = portal[0]["conversation_id"]
    direct = await inbox.fetchval(
        "SELECT direct_key FROM conversation WHERE id = $1", conversation_id
    )
    assert direct == f"{low}:{high}"
    message = await _post(rest, carol, conversation_id, "Thanks for connecting!")
    event = await _event_from(
        alice,
        room_id,
        lambda e: e["type"] == "m.room.message" and e["sender"] == ghost,
        what="carol's first message",
    )
    assert event["content"]["body"] == "Thanks for connecting!"
    assert await _event_id_of(inbox, message["id"]) == event["event_id"]


# ---------------------------------------------------------------------------- 5. rejected


async def test_rest_connection_request_rejected_by_declining_in_matrix(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    alice = await new_matrix_user("alice")
    me = await network.identity_of(alice.mxid, "Alice Declines")
    dave = await network.add_user("Dave Asks")
    ghost = ghost_of(dave)

    sent = await rest.post(REQUESTS, {"receiverUserId": str(me)}, as_user=dave)
    assert sent.status == 201, sent.body
    request = sent.data("connectionRequest")
    room_id = await _request_room(inbox, request["id"])
    invite = await wait_invite(alice, room_id, within=STEP)
    assert invite["sender"] == ghost

    await alice.leave_room(room_id)  # declines the invite
    rejected = await _wait_status(rest, dave, request["id"], "rejected")
    assert rejected["respondedAt"] is not None
    assert await invite_of(alice, room_id) is None
    low, high = sorted((me, dave))
    assert (
        await inbox.fetch(
            "SELECT 1 FROM connection WHERE user_low = $1 AND user_high = $2", low, high
        )
        == []
    )
    assert await inbox.fetch("SELECT 1 FROM portal WHERE room_id = $1", room_id) == []
    assert (await rest.get(CONNECTIONS, as_user=dave)).data("connections") == []
    # Alice had no management room, and none was opened for a network user's request.
    assert await inbox.fetch("SELECT 1 FROM management_room WHERE user_id = $1", alice.mxid) == []

    # The ghost leaves the room it made: nobody is left in it.
    async def ghost_left() -> list[asyncpg.Record] | None:
        rows = await _outbox(
            inbox, "sender = $1 AND action = 'leave' AND payload->>'room_id' = $2", ghost, room_id
        )
        return rows if rows and all(r["state"] == "sent" for r in rows) else None

    left = await wait_until(ghost_left, within=STEP, what=f"{ghost} to leave {room_id}")
    assert len(left) == 1
    assert await membership_of(alice, room_id, alice.mxid) in ("leave", None)


async def test_rest_connection_request_cancelled_withdraws_the_invite(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    alice = await new_matrix_user("alice")
    me = await network.identity_of(alice.mxid, "Alice Waits")
    erin = await network.add_user("Erin Changes Her Mind")
    ghost = ghost_of(erin)

    sent = await rest.post(REQUESTS, {"receiverUserId": str(me), "message": "hi"}, as_user=erin)
    request = sent.data("connectionRequest")
    room_id = await _request_room(inbox, request["id"])
    await wait_invite(alice, room_id, within=STEP)

    withdrawn = await rest.delete(f"{REQUESTS}/{request['id']}", as_user=erin)
    assert withdrawn.data("connectionRequest")["status"] == "cancelled"

    # The ghost takes the invite back and leaves: alice's invite is gone from her sync.
    async def uninvited() -> bool:
        return await invite_of(alice, room_id) is None

    await wait_until(uninvited, within=STEP, what=f"alice's invite to {room_id} withdrawn")

    async def ghost_done() -> list[asyncpg.Record] | None:
        rows = await _outbox(inbox, "sender = $1 AND payload->>'room_id' = $2", ghost, room_id)
        return rows if len(rows) == 2 and all(r["state"] == "sent" for r in rows) else None

    actions = await wait_until(ghost_done, within=STEP, what=f"{ghost}'s kick and leave sent")
    assert [(r["action"], _json(r["payload"]).get("user_id")) for r in actions] == [
        ("kick", alice.mxid),
        ("leave", None),
    ]
    # Her joining now is too late: the room is closed to her and the request stays cancelled.
    with pytest.raises(MatrixRequestError):
        await alice.join_room_by_id(room_id)
    got = await rest.get(f"{REQUESTS}/{request['id']}", as_user=erin)
    assert got.data("connectionRequest")["status"] == "cancelled"
    low, high = sorted((me, erin))
    assert (
        await inbox.fetch(
            "SELECT 1 FROM connection WHERE user_low = $1 AND user_high = $2", low, high
        )
        == []
    )


# ---------------------------------------------------------------------------- 6. notifications


async def test_rest_notification_reaches_the_management_room(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    alice = await new_matrix_user("alice")
    me = await network.identity_of(alice.mxid, "Alice Notified")
    operator = await network.add_user("Operator")
    mgmt, welcome = await _management_room(alice, inbox)

    sent = await rest.post(
        "/notification-api/notifications",
        {
            "notification": {
                "userIds": [str(me)],
                "kind": "job",
                "title": "New job match",
                "body": "Senior Matrix engineer",
            }
        },
        as_user=operator,
        admin=True,
    )
    assert sent.status == 201, sent.body
    [notification] = sent.data("notifications")
    assert notification["userId"] == str(me) and notification["kind"] == "job"

    body, _ = await wait_notice(
        alice,
        mgmt,
        lambda text: "New job match" in text,
        after=welcome + 1,
        what="the notification's notice",
    )
    assert body == "New job match: Senior Matrix engineer"
    listed = await rest.get("/notification-api/notifications", as_user=me)
    assert [n["id"] for n in listed.data("notifications")] == [notification["id"]]


# ---------------------------------------------------------------------------- 7. outbox wake-up


class _QuietBridge(BridgeProcess):
    """A second bridge process on a database of its own (a postgres:// URL)."""

    def dsn(self) -> str:
        return str(self.config["appservice"]["database"])


@pytest.fixture
async def quiet_bridge(bridge: BridgeProcess, e2e_root: Path) -> AsyncIterator[BridgeProcess]:
    """A bridge whose outbox sender polls once a minute, so that only a wake-up sends at once.

    It runs on a database of its own in the session bridge's PostgreSQL (nothing else sends its
    outbox), and its homeserver address is a closed port: a woken sender's attempt fails at once
    and is recorded on the row (``attempts``, ``last_error``), which is what the test looks for.
    """
    name = f"quiet_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(bridge.dsn(), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    directory = e2e_root / name
    directory.mkdir()
    port = free_port()
    config = {
        "homeserver": {"address": f"http://127.0.0.1:{free_port()}", "domain": SERVER_NAME},
        "appservice": {
            "address": f"http://127.0.0.1:{port}",
            "hostname": "127.0.0.1",
            "port": port,
            "id": "pn-quiet",
            "bot_username": BOT_LOCALPART,
            "as_token": secrets.token_hex(32),
            "hs_token": secrets.token_hex(32),
            "database": bridge.dsn().replace("/bridge?", f"/{name}?", 1),
            "inbox": {"workers": 1},
            "outbox": {"workers": 1, "poll_interval": 60.0, "retry_delay": 60.0},
        },
        "bridge": {"permissions": {"*": "block", SERVER_NAME: "user"}},
        "api": {"jwt": {"algorithm": "HS256", "secret": secrets.token_urlsafe(48)}},
        "logging": {"level": "DEBUG"},
    }
    config_path = directory / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    quiet = _QuietBridge(
        name=name,
        argv=[sys.executable, "-m", "bridge", "run", "-c", str(config_path)],
        cwd=directory,
        env=child_env(PYTHONPATH=str(REPO_ROOT)),
        log_path=e2e_root / f"{name}.log",
        ready_url=f"http://127.0.0.1:{port}/_matrix/mau/ready",
        config_path=config_path,
        config=config,
    )
    PROCESSES.append(quiet)
    try:
        await quiet.astart()
        yield quiet
    finally:
        await quiet.astop()
        PROCESSES.remove(quiet)
        admin = await asyncpg.connect(bridge.dsn(), timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await admin.close()


#: How soon a woken outbox sender takes up a row (it answers in milliseconds).
WOKEN_WITHIN = 5.0


async def test_rest_changes_wake_the_outbox_sender(quiet_bridge: BridgeProcess) -> None:
    """A change made over REST is sent to Matrix at once, not at the sender's next poll.

    Handlers of the inbox enqueue through ``OutboxQueue`` and the inbox processor calls its
    ``flush`` after each committed batch, which wakes the sender; the REST API enqueues through
    the same queue in its own transactions, and nothing flushes after those commit.
    """
    db = Inbox(quiet_bridge)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await db.fetch(
        "INSERT INTO network_user (id, display_name, matrix_user_id) "
        "VALUES ($1, 'Alice Quiet', $2), ($3, 'Bob Quiet', NULL)",
        alice,
        f"@alice-quiet:{SERVER_NAME}",
        bob,
    )
    low, high = sorted((alice, bob))
    await db.fetch(
        "INSERT INTO connection (id, user_low, user_high) VALUES ($1, $2, $3)",
        uuid.uuid4(),
        low,
        high,
    )
    async with RestApi(quiet_bridge) as rest:
        created = await rest.post(
            CONVERSATIONS,
            {"isGroup": False, "participantIds": [str(bob), str(alice)]},
            as_user=bob,
        )
    conversation_id = created.data("conversation")["id"]
    queued = await db.fetch(
        "SELECT action FROM outbox WHERE lane = $1 ORDER BY id", f"conv:{conversation_id}"
    )
    assert [r["action"] for r in queued] == ["create_room", "join"]

    async def taken_up() -> list[asyncpg.Record] | None:
        rows = await db.fetch(
            "SELECT id, state, attempts, last_error FROM outbox "
            "WHERE lane = $1 AND action = 'create_room' AND (attempts > 0 OR state <> 'pending')",
            f"conv:{conversation_id}",
        )
        return rows or None

    await wait_until(
        taken_up,
        within=WOKEN_WITHIN,
        what="the outbox sender to take up the REST API's create_room row "
        "(its poll interval is 60 s: only a wake-up makes it look sooner)",
    )


async def test_rest_deleted_direct_conversation_is_left_by_the_ghost(
    new_matrix_user: NewUser, inbox: Inbox, network: Network, rest: RestApi
) -> None:
    """Seed, deleteConversation: "Soft-delete a conversation thread. Only participants can
    delete. This is 'hide for all' (e.g., group exit or complete deletion)." Bob deletes his
    1:1 with alice over REST: his ghost says so in the portal and leaves it; the conversation
    is inactive for both and takes no new messages."""
    p = await _open_portal(new_matrix_user, inbox, network, rest, "Deletion")
    alice, ghost = p.alice, ghost_of(p.bob)
    path = f"{CONVERSATIONS}/{p.conversation_id}"
    deleted = await rest.delete(path, as_user=p.bob)
    assert deleted.status == 200, deleted.body
    assert deleted.data("conversation")["isActive"] is False

    notice = await _event_from(
        alice, p.room_id,
        lambda e: e["type"] == "m.room.message" and e["content"].get("msgtype") == "m.notice"
        and e["sender"] == ghost,
        what="the deletion notice from bob's ghost",
    )  # fmt: skip
    assert "deleted this conversation on the network" in notice["content"]["body"]
    await wait_membership(alice, p.room_id, ghost, "leave", within=STEP)
    # Both sides over REST: shown inactive, listed no more, no new messages.
    for user in (p.bob, p.me):
        got = (await rest.get(path, as_user=user)).data("conversation")
        assert got["isActive"] is False
        listed = (await rest.get(CONVERSATIONS, as_user=user)).data("conversations")
        assert str(p.conversation_id) not in [c["id"] for c in listed]
    refused = await rest.post(
        MESSAGES, {"conversationId": str(p.conversation_id), "content": "still there?"},
        as_user=p.me,
    )  # fmt: skip
    assert refused.status == 409, refused.body
    row = await inbox.fetch("SELECT is_active FROM conversation WHERE id = $1", p.conversation_id)
    assert row[0]["is_active"] is False
