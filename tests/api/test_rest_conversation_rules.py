"""Conversation rules over REST: a group starts with three, only connections are added (the
administrators excepted), only participants change a conversation."""

from __future__ import annotations

import uuid

from tests.api.conftest import Api, assert_error

CONV = "/messaging-api/v1/conversations"


def ids(*users: uuid.UUID) -> list[str]:
    return [str(u) for u in users]


async def test_a_group_needs_three_and_the_creator_connected_to_each(api: Api) -> None:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    stranger = await api.person("Stranger")
    two = {"isGroup": True, "participantIds": ids(ann, bob)}
    assert_error(*await api.call("POST", CONV, ann, json=two), 400, "at least three")
    with_stranger = {"isGroup": True, "participantIds": ids(ann, bob, stranger)}
    status, body = await api.call("POST", CONV, ann, json=with_stranger)
    assert_error(status, body, 403, str(stranger))
    assert "connection" in body["message"]
    _, listed = await api.call("GET", CONV, ann)
    assert listed["conversations"] == []  # nothing was created
    status, body = await api.call(
        "POST", CONV, ann, json={"isGroup": True, "participantIds": ids(ann, bob, cat)}
    )
    assert status == 201, body


async def test_a_direct_chat_needs_a_connection(api: Api) -> None:
    ann, stranger = await api.friend("Ann"), await api.person("Stranger")
    status, body = await api.call(
        "POST", CONV, ann, json={"isGroup": False, "participantIds": ids(ann, stranger)}
    )
    assert_error(status, body, 403, str(stranger))


async def test_administrators_add_anyone(api: Api) -> None:
    boss, bob, cat = uuid.uuid4(), await api.person("Bob"), await api.person("Cat")
    status, body = await api.call(
        "POST",
        CONV,
        boss,
        json={"isGroup": True, "participantIds": ids(boss, bob, cat)},
        admin=True,
    )
    assert status == 201, body
    dan = await api.person("Dan")
    path = f"{CONV}/{body['conversation']['id']}"
    status, body = await api.call(
        "PATCH", path, boss, json={"participantIds": ids(boss, bob, cat, dan)}, admin=True
    )
    assert status == 200, body
    assert set(body["conversation"]["participantIds"]) == set(ids(boss, bob, cat, dan))


async def test_participants_add_only_their_connections(api: Api) -> None:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    stranger, outsider = await api.person("Stranger"), await api.person("Outsider")
    _, body = await api.call(
        "POST", CONV, ann, json={"isGroup": True, "participantIds": ids(ann, bob, cat)}
    )
    path = f"{CONV}/{body['conversation']['id']}"
    status, body = await api.call(
        "PATCH", path, ann, json={"participantIds": ids(ann, bob, cat, stranger)}
    )
    assert_error(status, body, 403, str(stranger))
    # Not a participant: may not change it at all.
    assert_error(
        *await api.call("PATCH", path, outsider, json={"participantIds": ids(outsider)}), 403
    )
    await api.services.networking.connect(ann, stranger)
    status, body = await api.call(
        "PATCH", path, ann, json={"participantIds": ids(ann, bob, cat, stranger)}
    )
    assert status == 200, body
    # Removing needs no connection; a group may shrink below three once started.
    status, body = await api.call("PATCH", path, ann, json={"participantIds": ids(ann, stranger)})
    assert status == 200, body
    assert set(body["conversation"]["participantIds"]) == set(ids(ann, stranger))
