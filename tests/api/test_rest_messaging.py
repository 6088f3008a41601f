"""/messaging-api/v1: conversations and messages over real HTTP against a real Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.conftest import Api, assert_error

CONV = "/messaging-api/v1/conversations"
MSG = "/messaging-api/v1/messages"


async def direct(api: Api, a: uuid.UUID, b: uuid.UUID) -> Any:
    status, body = await api.call(
        "POST", CONV, a, json={"isGroup": False, "participantIds": [str(a), str(b)]}
    )
    assert status == 201, body
    return body["conversation"]


async def post(api: Api, user: uuid.UUID, conversation: str, content: str, **extra: Any) -> Any:
    status, body = await api.call(
        "POST", MSG, user, json={"conversationId": conversation, "content": content, **extra}
    )
    assert status == 201, body
    return body["message"]


# --- conversations --------------------------------------------------------------------------------


async def test_create_direct_conversation_envelope(api: Api) -> None:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    status, body = await api.call(
        "POST",
        CONV,
        ann,
        json={"isGroup": False, "participantIds": [str(ann), str(bob)]},
        params={"requestId": "req-1"},
    )
    assert status == 201
    assert body["status"] == "OK" and body["statusCode"] == 201
    assert (body["method"], body["action"], body["dataName"]) == ("POST", "create", "conversation")
    assert body["userId"] == str(ann) and body["requestId"] == "req-1"
    assert body["rowCount"] == 1 and body["uiPermissions"] == []
    assert isinstance(body["elapsedMs"], int) and body["appVersion"]
    conversation = body["conversation"]
    assert conversation["isGroup"] is False
    assert sorted(conversation["participantIds"]) == sorted([str(ann), str(bob)])
    assert conversation["lastMessageAt"] is None and conversation["isActive"] is True
    assert conversation["_owner"] == str(ann)
    # Prevent a duplicate 1:1, naming the existing one.
    status, dup = await api.call(
        "POST", CONV, bob, json={"isGroup": False, "participantIds": [str(bob), str(ann)]}
    )
    assert_error(status, dup, 409, conversation["id"])


async def test_create_conversation_validation(api: Api) -> None:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    cases = [
        ({"participantIds": [str(ann), str(bob)]}, 400, "isGroup"),
        ({"isGroup": False, "participantIds": [str(bob), str(cat)]}, 403, "session user"),
        ({"isGroup": False, "participantIds": [str(ann), "nope"]}, 400, "UUID"),
        ({"isGroup": True, "participantIds": [str(ann), str(bob)]}, 400, "three"),
        ({"isGroup": False, "participantIds": [str(ann), str(bob), str(cat)]}, 400, "two"),
        (
            {"isGroup": False, "participantIds": [str(ann), str(uuid.uuid4())]},
            404,
            "no network user",
        ),
        ({"isGroup": "yes", "participantIds": [str(ann), str(bob)]}, 400, "isGroup"),
    ]
    for payload, expected, fragment in cases:
        assert_error(*await api.call("POST", CONV, ann, json=payload), expected, fragment)
    status, body = await api.call(
        "POST", CONV, ann, data="{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(status, body, 400, "JSON")
    assert_error(*await api.call("POST", CONV, ann, json=[1, 2]), 400, "object")


async def test_only_participants_see_a_conversation(api: Api) -> None:
    ann, bob, eve = await api.friend("Ann"), await api.friend("Bob"), uuid.uuid4()
    conversation = await direct(api, ann, bob)
    status, body = await api.call("GET", f"{CONV}/{conversation['id']}", ann)
    assert status == 200 and body["conversation"]["id"] == conversation["id"]
    assert_error(*await api.call("GET", f"{CONV}/{conversation['id']}", eve), 403, "participants")
    assert_error(*await api.call("GET", f"{CONV}/{uuid.uuid4()}", ann), 404)
    assert_error(*await api.call("GET", f"{CONV}/not-a-uuid", ann), 400, "conversationId")


async def test_group_update_and_leave(api: Api) -> None:
    ann, bob, cat, dan = (
        await api.friend("Ann"),
        await api.friend("Bob"),
        await api.friend("Cat"),
        await api.friend("Dan"),
    )
    status, body = await api.call(
        "POST",
        CONV,
        ann,
        json={"isGroup": True, "participantIds": [str(ann), str(bob), str(cat)], "title": "Team"},
    )
    assert status == 201
    group = body["conversation"]
    assert group["title"] == "Team" and len(group["participantIds"]) == 3
    path = f"{CONV}/{group['id']}"
    status, body = await api.call(
        "PATCH", path, ann, json={"participantIds": [str(ann), str(bob), str(dan)], "topic": "Q3"}
    )
    assert status == 200, body
    assert set(body["conversation"]["participantIds"]) == {str(ann), str(bob), str(dan)}
    assert body["conversation"]["topic"] == "Q3" and body["action"] == "update"
    assert_error(*await api.call("PATCH", path, cat, json={"title": "x"}), 403)
    assert_error(*await api.call("PATCH", path, ann, json={"isGroup": False}), 409, "isGroup")
    assert_error(
        *await api.call("PATCH", path, ann, json={"lastMessageAt": "2024-01-01"}),
        400,
        "lastMessageAt is set by the server",
    )
    assert_error(*await api.call("PATCH", path, ann, json={}), 400, "nothing to update")
    status, body = await api.call("DELETE", path, bob)
    assert status == 200 and body["conversation"]["isActive"] is False
    status, body = await api.call("GET", path, ann)
    assert set(body["conversation"]["participantIds"]) == {str(ann), str(dan)}
    assert_error(*await api.call("GET", path, bob), 403)


async def test_direct_conversation_cannot_change(api: Api) -> None:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    path = f"{CONV}/{(await direct(api, ann, bob))['id']}"
    assert_error(
        *await api.call("PATCH", path, ann, json={"participantIds": [str(ann), str(cat)]}),
        409,
        "1:1",
    )  # (its DELETE deletes it for both: tests/api/test_rest_seed.py)


async def test_list_conversations_filters(api: Api) -> None:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    one = await direct(api, ann, bob)
    two = await direct(api, ann, cat)
    _, body = await api.call(
        "POST", CONV, ann, json={"isGroup": True, "participantIds": [str(ann), str(bob), str(cat)]}
    )
    group = body["conversation"]
    await post(api, ann, one["id"], "hello")  # `one` is now the most recently active

    async def ids(**params: Any) -> list[str]:
        status, body = await api.call("GET", CONV, ann, params=params)
        assert status == 200, body
        assert body["paging"]["totalRowCount"] == body["rowCount"] == len(body["conversations"])
        return [c["id"] for c in body["conversations"]]

    assert await ids() == [one["id"], group["id"], two["id"]]
    assert await ids(isGroup="true") == [group["id"]]
    assert set(await ids(isGroup=["true", "false"])) == {one["id"], two["id"], group["id"]}
    assert await ids(isGroup="null") == []
    assert set(await ids(participantIds=str(bob))) == {one["id"], group["id"]}
    assert await ids(participantIds=[str(bob), str(cat)]) == [group["id"]]
    assert set(await ids(participantIds=[str(bob), str(cat)], participantIds_op="overlap")) == {
        one["id"],
        two["id"],
        group["id"],
    }
    assert await ids(participantIds="null") == []
    assert set(await ids(lastMessageAt="null")) == {two["id"], group["id"]}
    assert await ids(lastMessageAt="$today") == [one["id"]]
    assert set(await ids(lastMessageAt=["$today", "null"])) == {one["id"], two["id"], group["id"]}
    status, body = await api.call("GET", CONV, ann, params={"lastMessageAt": "yesterday"})
    assert_error(status, body, 400, "lastMessageAt")
    status, body = await api.call("GET", CONV, ann, params={"isGroup": "maybe"})
    assert_error(status, body, 400, "isGroup")
    _, body = await api.call("GET", CONV, ann, params={"isGroup": "true"})
    assert body["filters"] == [{"name": "isGroup", "values": ["true"]}]
    # Someone else's conversations are not listed.
    _, body = await api.call("GET", CONV, uuid.uuid4())
    assert body["conversations"] == [] and body["paging"]["totalRowCount"] == 0


# --- messages -------------------------------------------------------------------------------------


async def test_create_and_get_message(api: Api) -> None:
    ann, bob, eve = await api.friend("Ann"), await api.friend("Bob"), uuid.uuid4()
    conversation = await direct(api, ann, bob)
    message = await post(
        api, ann, conversation["id"], "hi <b>", formattedContent="<b>hi</b><script>"
    )
    assert message["senderUserId"] == str(ann) and message["readBy"] == [str(ann)]
    assert message["conversationId"] == conversation["id"] and message["isActive"] is True
    assert message["content"] == "hi <b>" and message["formattedContent"] == "<b>hi</b>"
    assert message["recordVersion"] == 1 and message["deletedFor"] == []
    status, body = await api.call("GET", f"{CONV}/{conversation['id']}", ann)
    assert body["conversation"]["lastMessageAt"] == message["sentAt"]
    status, body = await api.call("GET", f"{MSG}/{message['id']}", bob)
    assert status == 200 and body["message"]["id"] == message["id"]
    assert_error(*await api.call("GET", f"{MSG}/{message['id']}", eve), 403)
    assert_error(*await api.call("GET", f"{MSG}/{uuid.uuid4()}", ann), 404)
    # Validation and authorisation.
    cid = conversation["id"]
    assert_error(
        *await api.call("POST", MSG, eve, json={"conversationId": cid, "content": "x"}),
        403,
        "participants",
    )
    assert_error(*await api.call("POST", MSG, ann, json={"content": "x"}), 400, "conversationId")
    assert_error(*await api.call("POST", MSG, ann, json={"conversationId": cid}), 400, "content")
    assert_error(
        *await api.call("POST", MSG, ann, json={"conversationId": cid, "content": 5}),
        400,
        "content",
    )
    assert_error(
        *await api.call(
            "POST", MSG, ann, json={"conversationId": cid, "content": "x", "senderUserId": str(bob)}
        ),
        403,
        "senderUserId",
    )


async def test_admin_posts_as_another_sender_and_backdates(api: Api) -> None:
    admin, ann, bob = uuid.uuid4(), await api.friend("Ann"), await api.friend("Bob")
    conversation = await direct(api, ann, bob)
    when = "2024-05-01T10:00:00+00:00"
    message = (
        await api.call(
            "POST",
            MSG,
            admin,
            admin=True,
            json={
                "conversationId": conversation["id"],
                "content": "imported",
                "senderUserId": str(bob),
                "sentAt": when,
            },
        )
    )[1]["message"]
    assert (
        message["senderUserId"] == str(bob) and message["sentAt"] == "2024-05-01T10:00:00.000000Z"
    )
    # A user's sentAt is refused: the server stamps it.
    status, body = await api.call(
        "POST",
        MSG,
        ann,
        json={"conversationId": conversation["id"], "content": "x", "sentAt": when},
    )
    assert_error(status, body, 400, "sentAt")
    mine = await post(api, ann, conversation["id"], "now")
    assert mine["sentAt"] > "2025"


async def test_edit_read_and_delete(api: Api) -> None:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    conversation = await direct(api, ann, bob)
    message = await post(api, ann, conversation["id"], "first")
    path = f"{MSG}/{message['id']}"
    status, body = await api.call("PATCH", path, ann, json={"content": "edited"})
    assert status == 200, body
    assert body["message"]["content"] == "edited" and body["message"]["recordVersion"] == 2
    assert body["message"]["editedAt"] is not None
    assert_error(*await api.call("PATCH", path, bob, json={"content": "hacked"}), 403, "sender")
    assert_error(*await api.call("PATCH", path, bob, json={"readBy": [str(ann)]}), 403, "yourself")
    assert_error(*await api.call("PATCH", path, bob, json={}), 400, "nothing to update")
    status, body = await api.call("PATCH", path, bob, json={"readBy": [str(bob)]})
    assert status == 200 and body["message"]["readBy"] == [str(ann), str(bob)]
    # Bob deletes it for himself: gone from his list, still in Ann's.
    status, body = await api.call("DELETE", path, bob)
    assert status == 200 and body["message"]["deletedFor"] == [str(bob)]
    assert body["message"]["isActive"] is True
    _, bobs = await api.call("GET", MSG, bob, params={"conversationId": conversation["id"]})
    _, anns = await api.call("GET", MSG, ann, params={"conversationId": conversation["id"]})
    assert bobs["messages"] == [] and [m["id"] for m in anns["messages"]] == [message["id"]]
    assert anns["messages"][0]["deletedFor"] == []  # Bob's choice is his own
    # Ann deletes it for everyone.
    status, body = await api.call("DELETE", path, ann)
    assert status == 200 and body["message"]["isActive"] is False
    assert body["message"]["content"] == ""
    _, anns = await api.call("GET", MSG, ann, params={"conversationId": conversation["id"]})
    assert anns["messages"] == []
    assert_error(*await api.call("PATCH", path, ann, json={"content": "again"}), 409, "deleted")
    other = await post(api, ann, conversation["id"], "second")
    status, body = await api.call(
        "PATCH", f"{MSG}/{other['id']}", bob, json={"deletedFor": [str(bob)]}
    )
    assert status == 200 and body["message"]["deletedFor"] == [str(bob)]


async def test_list_messages_order_filters_and_paging(api: Api) -> None:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    ab = (await direct(api, ann, bob))["id"]
    ac = (await direct(api, ann, cat))["id"]
    admin = uuid.uuid4()
    base = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    sent = []
    for n in range(6):  # alternating senders, one day apart, in conversation ab
        sender = ann if n % 2 == 0 else bob
        _, body = await api.call(
            "POST",
            MSG,
            admin,
            admin=True,
            json={
                "conversationId": ab,
                "content": f"m{n}",
                "senderUserId": str(sender),
                "sentAt": (base + timedelta(days=n)).isoformat(),
            },
        )
        sent.append(body["message"])
    in_ac = await post(api, cat, ac, "now")

    async def contents(user: uuid.UUID = ann, **params: Any) -> list[str]:
        status, body = await api.call("GET", MSG, user, params=params)
        assert status == 200, body
        return [m["content"] for m in body["messages"]]

    assert await contents(conversationId=ab) == ["m0", "m1", "m2", "m3", "m4", "m5"]
    assert await contents() == ["m0", "m1", "m2", "m3", "m4", "m5", "now"]
    assert await contents(conversationId=[ab, ac], senderUserId=str(cat)) == ["now"]
    assert await contents(senderUserId=[str(bob), str(cat)]) == ["m1", "m3", "m5", "now"]
    assert await contents(senderUserId="null") == []
    assert await contents(conversationId="null") == []
    assert await contents(sentAt="2024-03-12") == ["m2"]
    assert await contents(sentAt=["2024-03-12", "2024-03-14"]) == ["m2", "m4"]
    assert await contents(sentAt=sent[3]["sentAt"]) == ["m3"]
    assert await contents(sentAt=["$lin-2024-03-11", "$leq-2024-03-13"]) == ["m1", "m2", "m3"]
    assert await contents(sentAt="$today") == ["now"]
    assert await contents(sentAt="$ltoday") == ["now"]
    assert await contents(sentAt=["$week", "2024-03-10"]) == ["m0", "now"]
    assert await contents(sentAt="null") == []
    assert in_ac["content"] == "now"
    # readBy: the sender has read their own; Bob reads up to m2.
    await api.call("PATCH", f"{MSG}/{sent[2]['id']}", bob, json={"readBy": [str(bob)]})
    assert await contents(conversationId=ab, readBy=str(bob)) == ["m0", "m1", "m2", "m3", "m5"]
    # Paging.
    _, body = await api.call(
        "GET", MSG, ann, params={"conversationId": ab, "pageNumber": "2", "pageRowCount": "4"}
    )
    assert [m["content"] for m in body["messages"]] == ["m4", "m5"]
    assert body["paging"] == {
        "pageNumber": 2,
        "pageRowCount": 4,
        "totalRowCount": 6,
        "pageCount": 2,
        "nextCursor": None,
    }
    _, body = await api.call(
        "GET", MSG, ann, params={"conversationId": ab, "pageNumber": "0", "pageRowCount": "1"}
    )
    assert len(body["messages"]) == 6 and body["paging"]["pageNumber"] == 0
    # Seek past a message.
    assert await contents(conversationId=ab, afterMessageId=sent[3]["id"]) == ["m4", "m5"]
    assert await contents(conversationId=ab, afterMessageId=sent[3]["id"], pageRowCount="1") == [
        "m4"
    ]
    # Not a participant of a named conversation: 403; of none: an empty list.
    eve = uuid.uuid4()
    assert_error(*await api.call("GET", MSG, eve, params={"conversationId": ab}), 403)
    assert await contents(eve) == []
    assert_error(*await api.call("GET", MSG, eve, params={"afterMessageId": sent[0]["id"]}), 403)


async def test_list_messages_bad_queries(api: Api) -> None:
    ann = uuid.uuid4()
    for params, fragment in [
        ({"pageNumber": "-1"}, "pageNumber"),
        ({"pageNumber": "abc"}, "pageNumber"),
        ({"pageRowCount": "0"}, "pageRowCount"),
        ({"pageRowCount": "1001"}, "pageRowCount"),
        ({"pageNumber": ["1", "2"]}, "once"),
        ({"conversationId": "nope"}, "conversationId"),
        ({"senderUserId": ["null", "nope"]}, "senderUserId"),
        ({"sentAt": "$lin-someday"}, "sentAt"),
        ({"afterMessageId": "x"}, "afterMessageId"),
        ({"requestId": "has spaces"}, "requestId"),
    ]:
        assert_error(*await api.call("GET", MSG, ann, params=params), 400, fragment)
