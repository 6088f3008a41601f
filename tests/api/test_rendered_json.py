"""The list pages PostgreSQL renders (bridge.messaging.rendered) are the JSON the response
types render (bridge.api.resources) for the same rows: same fields, same order, same values,
in every branch (deleted for everyone, hidden by the viewer, edited, read, with media)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec

from bridge.api.resources import Conversation, Message
from bridge.listing import Window
from bridge.messaging.filters import ConversationFilter, MessageFilter
from bridge.messaging.rendered import _CONVERSATION_JSON, _MESSAGE_JSON
from bridge.messaging.store import _CONVERSATION, _MESSAGE, _conversation, _message
from tests.api.conftest import Api
from tests.api.test_rest_messaging import CONV, MSG, direct, post

#: Text JSON escapes in different ways (quotes, controls, separators, astral characters).
AWKWARD = 'a "quoted" \\ back\nslash\t\x01 \u2028 é 😀 </script>'


def ordered(text: str | bytes) -> Any:
    """The JSON with every object as its list of (key, value) pairs: order counts."""
    return json.loads(text, object_pairs_hook=list)


async def _scene(api: Api) -> tuple[uuid.UUID, str, str]:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    status, body = await api.call(
        "POST",
        CONV,
        ann,
        json={"isGroup": True, "participantIds": [str(ann), str(bob), str(cat)], "title": AWKWARD},
    )
    assert status == 201, body
    group = body["conversation"]["id"]
    ab = (await direct(api, ann, bob))["id"]
    first = await post(api, ann, group, "plain")
    await post(api, bob, group, AWKWARD, mentions=[str(ann)], replyToMessageId=first["id"])
    edited = await post(api, cat, group, "to be edited")
    gone = await post(api, bob, group, "deleted for everyone")
    hidden = await post(api, bob, group, "hidden by Ann")
    await post(api, ann, ab, "direct")
    assert (await api.call("PATCH", f"{MSG}/{edited['id']}", cat, json={"content": "edited"}))[
        0
    ] == 200
    assert (await api.call("DELETE", f"{MSG}/{gone['id']}", bob))[0] == 200
    assert (await api.call("DELETE", f"{MSG}/{hidden['id']}", ann))[0] == 200
    # Bob reads up to the edited message; Cat's is not there yet.
    assert (await api.call("PATCH", f"{MSG}/{edited['id']}", bob, json={"readBy": [str(bob)]}))[
        0
    ] == 200
    async with api.db.acquire() as conn:
        # What the API does not set: media, formatting, whole seconds, a creator gone.
        await conn.execute(
            """
            UPDATE message SET media = '{"url": "mxc://example.org/abc", "info": {"w": 1, "é": "😀"}}',
                   format = 'org.matrix.custom.html', formatted_content = '<b>x</b>',
                   sent_at = date_trunc('second', sent_at)
            WHERE id = $1
            """,
            uuid.UUID(first["id"]),
        )
        await conn.execute(
            "UPDATE conversation SET created_by = NULL, topic = $2 WHERE id = $1",
            uuid.UUID(ab),
            AWKWARD,
        )
    return ann, group, ab


async def test_every_message_renders_as_the_response_type_does(api: Api) -> None:
    ann, group, _ = await _scene(api)
    async with api.db.acquire() as conn:
        for viewer in (ann, uuid.uuid4()):
            rendered = await conn.fetch(
                f"SELECT row_to_json(j)::text AS json FROM message m "
                f"CROSS JOIN LATERAL ({_MESSAGE_JSON}) j "
                "WHERE m.conversation_id = $2 ORDER BY m.sent_at, m.id",
                viewer,
                uuid.UUID(group),
            )
            rows = await conn.fetch(
                f"SELECT {_MESSAGE} FROM message m WHERE m.conversation_id = $1 "
                "ORDER BY m.sent_at, m.id",
                uuid.UUID(group),
            )
            typed = [msgspec.json.encode(Message.of(_message(r), viewer)) for r in rows]
            assert len(rendered) == len(typed) == 5
            assert [ordered(r["json"]) for r in rendered] == [ordered(t) for t in typed]
    # The branches were there to render.
    messages = [msgspec.json.decode(t) for t in typed]
    assert any(not m["isActive"] for m in messages) and any(m["editedAt"] for m in messages)
    assert any(m["media"] for m in messages) and any(len(m["readBy"]) > 1 for m in messages)


async def test_every_conversation_renders_as_the_response_type_does(api: Api) -> None:
    await _scene(api)
    order = "ORDER BY c.created_at, c.id"
    async with api.db.acquire() as conn:
        rendered = await conn.fetch(
            f"SELECT row_to_json(j)::text AS json FROM conversation c "
            f"CROSS JOIN LATERAL ({_CONVERSATION_JSON}) j {order}"
        )
        rows = await conn.fetch(f"SELECT {_CONVERSATION} FROM conversation c {order}")
    typed = [msgspec.json.encode(Conversation.of(_conversation(r))) for r in rows]
    assert len(rendered) == len(typed) == 2
    assert [ordered(r["json"]) for r in rendered] == [ordered(t) for t in typed]


async def _raw(api: Api, user: uuid.UUID, path: str, params: dict[str, str]) -> Any:
    resp = await api.client.get(
        path, params=params, headers={"Authorization": f"Bearer {api.token_for(user)}"}
    )
    assert resp.status == 200, await resp.text()
    return ordered(await resp.read())


def _field(body: list[tuple[str, Any]], name: str) -> Any:
    return dict(body)[name]


async def test_rendered_pages_answer_what_the_typed_path_answers(api: Api) -> None:
    """The envelope around rendered rows: rows, rowCount, paging and the next cursor as the
    typed path (the service's page, the response types) has them."""
    ann, group, _ = await _scene(api)
    messaging = api.services.messaging
    for number in (1, 2, 3):
        params = {"conversationId": group, "pageNumber": str(number), "pageRowCount": "2"}
        body = await _raw(api, ann, MSG, params)
        page = await messaging.messages_page(
            ann, [uuid.UUID(group)], MessageFilter(), Window(limit=2, offset=(number - 1) * 2)
        )
        typed = msgspec.json.encode([Message.of(m, ann) for m in page.rows])
        assert _field(body, "messages") == ordered(typed)
        assert _field(body, "rowCount") == len(page.rows)
        paging = dict(_field(body, "paging"))
        assert paging["totalRowCount"] == page.total == 3  # one deleted, one Ann hid
        assert (paging["nextCursor"] is not None) == page.more
    body = await _raw(api, ann, CONV, {"pageNumber": "1", "pageRowCount": "1"})
    conversations = await messaging.conversations_page(ann, ConversationFilter(), Window(limit=1))
    typed = msgspec.json.encode([Conversation.of(c) for c in conversations.rows])
    assert _field(body, "conversations") == ordered(typed)
    assert dict(_field(body, "paging"))["totalRowCount"] == conversations.total == 2
    after = dict(_field(body, "paging"))["nextCursor"]
    assert after is not None
    rest = await _raw(api, ann, CONV, {"cursor": after, "pageRowCount": "1"})
    assert _field(rest, "rowCount") == 1
    assert _field(_field(rest, "conversations")[0], "id") != _field(
        _field(body, "conversations")[0], "id"
    )
    empty = await _raw(api, await api.friend("Dan"), CONV, {})
    assert _field(empty, "conversations") == [] and _field(empty, "rowCount") == 0
