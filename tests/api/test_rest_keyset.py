"""Keyset cursors (``paging.nextCursor`` / ``?cursor=``) and the totals of the list calls."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.messaging import queries as messaging_queries
from bridge.notifications import queries as notification_queries
from tests.api.conftest import Api, assert_error
from tests.api.test_rest_messaging import direct

CONV = "/messaging-api/v1/conversations"
MSG = "/messaging-api/v1/messages"
NOTE = "/notification-api/notifications"
BASE = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


async def backdated(api: Api, conversation: str, sender: uuid.UUID, n: int, **extra: Any) -> Any:
    status, body = await api.call(
        "POST",
        MSG,
        uuid.uuid4(),
        admin=True,
        json={
            "conversationId": conversation,
            "content": f"m{n}",
            "senderUserId": str(sender),
            "sentAt": (BASE + timedelta(minutes=n)).isoformat(),
        }
        | extra,
    )
    assert status == 201, body
    return body["message"]


async def walk(api: Api, path: str, user: uuid.UUID, name: str, **params: Any) -> list[Any]:
    """Every page by cursor; checks each page's paging on the way."""
    pages: list[Any] = []
    cursor = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        status, body = await api.call("GET", path, user, params=query)
        assert status == 200, body
        paging = body["paging"]
        assert paging["pageNumber"] == (None if cursor else 1)
        pages.append(body[name])
        cursor = paging["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50


async def test_messages_by_cursor_and_the_visible_total(api: Api) -> None:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    ab = (await direct(api, ann, bob))["id"]
    sent = [await backdated(api, ab, ann if n % 2 else bob, n) for n in range(7)]
    # Two messages with the same sentAt: the id breaks the tie, in cursors too.
    sent.append(await backdated(api, ab, bob, 6))
    # Bob deletes m1 for everyone; Ann hides m2 for herself only.
    assert (await api.call("DELETE", f"{MSG}/{sent[1]['id']}", ann))[0] == 200
    assert (await api.call("DELETE", f"{MSG}/{sent[2]['id']}", ann))[0] == 200

    _, everything = await api.call("GET", MSG, ann, params={"conversationId": ab, "pageNumber": 0})
    expected = [m["id"] for m in everything["messages"]]
    assert len(expected) == 6 and sent[1]["id"] not in expected and sent[2]["id"] not in expected
    assert everything["paging"]["totalRowCount"] == 6 and everything["paging"]["nextCursor"] is None
    _, bobs = await api.call("GET", MSG, bob, params={"conversationId": ab})
    assert bobs["paging"]["totalRowCount"] == 7  # m2 is hidden from Ann only

    pages = await walk(api, MSG, ann, "messages", conversationId=ab, pageRowCount=4)
    assert [len(p) for p in pages] == [4, 2]
    assert [m["id"] for p in pages for m in p] == expected
    pages = await walk(api, MSG, ann, "messages", conversationId=ab, pageRowCount=3)
    assert [len(p) for p in pages] == [3, 3]  # a full last page: no cursor after it
    # The total is the whole list's on every page, also those a cursor asks for.
    _, first = await api.call("GET", MSG, ann, params={"conversationId": ab, "pageRowCount": 2})
    _, second = await api.call(
        "GET", MSG, ann, params={"conversationId": ab, "cursor": first["paging"]["nextCursor"]}
    )
    assert second["paging"]["totalRowCount"] == 6 and second["paging"]["pageCount"] == 1
    # afterMessageId keeps counting what follows the anchor.
    _, after = await api.call(
        "GET", MSG, ann, params={"conversationId": ab, "afterMessageId": expected[1]}
    )
    assert after["paging"]["totalRowCount"] == 4 and after["rowCount"] == 4
    # Filters apply to cursor pages as to any page; their total is a count of the matches.
    bob_pages = await walk(api, MSG, ann, "messages", senderUserId=str(bob), pageRowCount=2)
    assert [m["content"] for p in bob_pages for m in p] == ["m0", "m4", "m6", "m6"]
    _, filtered = await api.call("GET", MSG, ann, params={"senderUserId": str(bob)})
    assert filtered["paging"]["totalRowCount"] == 4
    # Without conversationId: every conversation of the viewer.
    ac = (await direct(api, ann, await api.friend("Cat")))["id"]
    await backdated(api, ac, ann, 100)
    pages = await walk(api, MSG, ann, "messages", pageRowCount=5)
    assert [m["content"] for p in pages for m in p][-1] == "m100"
    _, both = await api.call("GET", MSG, ann)
    assert both["paging"]["totalRowCount"] == 7


async def test_message_count_follows_writes(api: Api) -> None:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    ab = (await direct(api, ann, bob))["id"]
    sent = [await backdated(api, ab, bob, n) for n in range(3)]

    async def stored() -> tuple[int, int]:
        async with api.db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT message_count, (SELECT count(*) FROM message m WHERE m.is_active "
                "AND m.conversation_id = c.id) AS active FROM conversation c WHERE c.id = $1",
                uuid.UUID(ab),
            )
        return row["message_count"], row["active"]

    assert await stored() == (3, 3)
    await api.call("DELETE", f"{MSG}/{sent[0]['id']}", bob)  # for everyone
    await api.call("DELETE", f"{MSG}/{sent[0]['id']}", bob)  # again: nothing changes
    assert await stored() == (2, 2)
    await api.call("DELETE", f"{MSG}/{sent[1]['id']}", ann)  # hidden for Ann only
    assert await stored() == (2, 2)
    async with api.db.acquire() as conn:
        hidden = await conn.fetchval(
            "SELECT conversation_id FROM message_deletion WHERE message_id = $1",
            uuid.UUID(sent[1]["id"]),
        )
    assert str(hidden) == ab
    _, body = await api.call("GET", MSG, ann, params={"conversationId": ab})
    assert body["paging"]["totalRowCount"] == 1 == body["rowCount"]
    # Hiding a message that is then deleted for everyone is not subtracted twice.
    await api.call("DELETE", f"{MSG}/{sent[1]['id']}", bob)
    _, body = await api.call("GET", MSG, ann, params={"conversationId": ab})
    assert body["paging"]["totalRowCount"] == 1 == body["rowCount"]


async def test_bad_cursors(api: Api) -> None:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    ab = (await direct(api, ann, bob))["id"]
    for n in range(3):
        await backdated(api, ab, bob, n)
    _, body = await api.call("GET", MSG, ann, params={"pageRowCount": 1})
    cursor = body["paging"]["nextCursor"]
    first = body["messages"][0]["id"]
    for path, params, fragment in [
        (MSG, {"cursor": "not-a-cursor"}, "cursor"),
        (MSG, {"cursor": ""}, "cursor"),
        (MSG, {"cursor": cursor, "afterMessageId": first}, "not both"),
        (MSG, {"cursor": [cursor, cursor]}, "once"),
        (CONV, {"cursor": cursor}, "cursor"),  # a messages cursor on conversations
        (NOTE, {"cursor": cursor}, "cursor"),
    ]:
        assert_error(*await api.call("GET", path, ann, params=params), 400, fragment)
    # An unknown afterMessageId is a 404 whatever comes with it.
    params = {"cursor": cursor, "afterMessageId": str(uuid.uuid4())}
    assert_error(*await api.call("GET", MSG, ann, params=params), 404)
    # With a cursor, pageNumber counts pages after it.
    _, second = await api.call("GET", MSG, ann, params={"pageRowCount": 1, "cursor": cursor})
    _, third = await api.call(
        "GET", MSG, ann, params={"pageRowCount": 1, "cursor": cursor, "pageNumber": 2}
    )
    assert len(second["messages"]) == len(third["messages"]) == 1
    assert second["messages"][0]["id"] != third["messages"][0]["id"]
    assert third["paging"]["pageNumber"] is None
    # Forged cursors at the ends of time: an empty page or the whole list, never a 500.
    edge = "0" * 32
    for forged, count in [(f"m999999999999999999_{edge}", 0), (f"m-999999999999999999_{edge}", 3)]:
        status, body = await api.call("GET", MSG, ann, params={"cursor": forged})
        assert status == 200 and len(body["messages"]) == count, body
    # A cursor is no permission: someone else's use of it sees only their own list.
    _, other = await api.call("GET", MSG, uuid.uuid4(), params={"cursor": cursor})
    assert other["messages"] == [] and other["paging"]["totalRowCount"] == 0


@pytest.mark.parametrize("from_the_end", [100, 0])
async def test_message_pages_past_the_middle_are_the_same_from_the_end(
    api: Api, monkeypatch: pytest.MonkeyPatch, from_the_end: int
) -> None:
    # from_the_end 0: every page past the middle is found walking backwards.
    monkeypatch.setattr(messaging_queries, "FROM_THE_END", from_the_end)
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    ab = (await direct(api, ann, bob))["id"]
    sent = [await backdated(api, ab, ann if n % 2 else bob, n) for n in range(11)]
    sent.append(await backdated(api, ab, bob, 10))  # a tie on sentAt
    assert (await api.call("DELETE", f"{MSG}/{sent[3]['id']}", ann))[0] == 200  # for everyone
    assert (await api.call("DELETE", f"{MSG}/{sent[8]['id']}", ann))[0] == 200  # Ann only
    # Hidden by Ann, then deleted for everyone by Bob: gone once, not subtracted twice.
    assert (await api.call("DELETE", f"{MSG}/{sent[4]['id']}", ann))[0] == 200
    assert (await api.call("DELETE", f"{MSG}/{sent[4]['id']}", bob))[0] == 200
    _, everything = await api.call("GET", MSG, ann, params={"conversationId": ab, "pageNumber": 0})
    expected = [m["id"] for m in everything["messages"]]
    assert len(expected) == 9
    for size in (3, 4):
        for page in range(1, 6):
            params = {"conversationId": ab, "pageRowCount": size, "pageNumber": page}
            status, body = await api.call("GET", MSG, ann, params=params)
            assert status == 200, body
            assert [m["id"] for m in body["messages"]] == expected[size * (page - 1) : size * page]
            assert body["paging"]["totalRowCount"] == 9
            assert (body["paging"]["nextCursor"] is None) == (size * page >= 9)


async def test_conversations_by_cursor(api: Api) -> None:
    ann = await api.friend("Ann")
    others = [await api.friend(f"P{n}") for n in range(5)]
    convs = [(await direct(api, ann, other))["id"] for other in others]
    # Messages of 2024 order three; the two without messages sort by creation (now): first.
    for n, conv in enumerate(convs[:3]):
        await backdated(api, conv, ann, n)
    _, everything = await api.call("GET", CONV, ann, params={"pageNumber": 0})
    expected = [c["id"] for c in everything["conversations"]]
    assert expected == [convs[4], convs[3], convs[2], convs[1], convs[0]]
    pages = await walk(api, CONV, ann, "conversations", pageRowCount=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c["id"] for p in pages for c in p] == expected
    assert all(len(c["participantIds"]) == 2 for p in pages for c in p)
    _, body = await api.call("GET", CONV, ann, params={"pageRowCount": 2, "pageNumber": 3})
    assert [c["id"] for c in body["conversations"]] == expected[4:]
    assert body["paging"]["totalRowCount"] == 5 and body["paging"]["nextCursor"] is None
    # A filter narrows cursor pages and the total alike.
    _, body = await api.call("GET", CONV, ann, params={"participantIds": str(others[0])})
    assert body["paging"]["totalRowCount"] == 1 and body["conversations"][0]["id"] == convs[0]
    _, body = await api.call("GET", CONV, ann, params={"isGroup": "true"})
    assert body["paging"]["totalRowCount"] == 0


@pytest.mark.parametrize("deep_offset", [1000, 3])
async def test_notifications_by_cursor_and_deep_pages(
    api: Api, monkeypatch: pytest.MonkeyPatch, deep_offset: int
) -> None:
    # deep_offset 3: pages from the third row on past the middle are walked from the end.
    monkeypatch.setattr(notification_queries, "DEEP_OFFSET", deep_offset)
    ann = await api.friend("Ann")
    for n in range(7):
        await api.call(
            "POST",
            NOTE,
            uuid.uuid4(),
            admin=True,
            json={"notification": {"userIds": [str(ann)], "title": f"n{n}"}},
        )
    for sort, order in [("-createdAt", -1), ("createdAt", 1)]:
        _, body = await api.call("GET", NOTE, ann, params={"limit": "100", "sortBy": sort})
        titles = [n["title"] for n in body["notifications"]]
        assert titles == [f"n{n}" for n in range(7)][::order]
        pages = await walk(api, NOTE, ann, "notifications", limit="3", sortBy=sort)
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [n["title"] for p in pages for n in p] == titles
        for page in (2, 3, 4):
            _, body = await api.call(
                "GET", NOTE, ann, params={"limit": "3", "page": str(page), "sortBy": sort}
            )
            assert [n["title"] for n in body["notifications"]] == titles[3 * page - 3 : 3 * page]
            assert body["paging"]["totalRowCount"] == 7
            assert (body["paging"]["nextCursor"] is None) == (page >= 3)
    # A cursor is a position: with the other order the list goes on from it the other way.
    _, body = await api.call("GET", NOTE, ann, params={"limit": "2"})
    assert [n["title"] for n in body["notifications"]] == ["n6", "n5"]
    params = {"cursor": body["paging"]["nextCursor"], "sortBy": "createdAt"}
    status, body = await api.call("GET", NOTE, ann, params=params)
    assert status == 200 and [n["title"] for n in body["notifications"]] == ["n6"]
