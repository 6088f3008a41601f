"""Messaging rules against a real Postgres."""

from __future__ import annotations

import asyncpg
import pytest

from bridge.errors import BadRequest, Conflict, Forbidden
from bridge.messaging.models import NewMessage, Origin
from tests.domain.conftest import Services


async def people(conn: asyncpg.Connection, services: Services, *names: str) -> list:
    """New users, each connected to the others (so they may put each other in conversations)."""
    created = [(await services.users.create(conn, name)).id for name in names]
    for i, a in enumerate(created):
        for b in created[i + 1 :]:
            await services.networking.connect_directly(conn, a, b)
    return created


async def test_direct_conversation_is_unique_per_pair(
    conn: asyncpg.Connection, services: Services
) -> None:
    ann, bob = await people(conn, services, "Ann", "Bob")
    first, created = await services.messaging.open_direct(conn, ann, bob, origin=Origin.MATRIX)
    again, created_again = await services.messaging.open_direct(
        conn, bob, ann, origin=Origin.NETWORK
    )
    assert created and not created_again
    assert first.id == again.id
    assert set(first.participant_ids) == {ann, bob}
    assert not first.is_group
    with pytest.raises(Conflict):
        await services.messaging.add_participants(
            conn, first.id, [ann], actor=ann, origin=Origin.NETWORK
        )


async def test_only_participants_see_and_post(conn: asyncpg.Connection, services: Services) -> None:
    ann, bob, eve = await people(conn, services, "Ann", "Bob", "Eve")
    conv, _ = await services.messaging.open_direct(conn, ann, bob, origin=Origin.NETWORK)
    with pytest.raises(Forbidden):
        await services.messaging.get_for(conn, eve, conv.id)
    with pytest.raises(Forbidden):
        await services.messaging.post(conn, eve, conv.id, NewMessage("hi"), origin=Origin.NETWORK)
    with pytest.raises(Forbidden):
        await services.messaging.list_messages(conn, eve, conv.id)


async def test_post_sanitises_notifies_and_moves_last_message(
    conn: asyncpg.Connection, services: Services
) -> None:
    ann, bob, cat = await people(conn, services, "Ann", "Bob", "Cat")
    group = await services.messaging.create_group(
        conn, ann, [bob, cat], title="Team", origin=Origin.NETWORK
    )
    message = await services.messaging.post(
        conn,
        ann,
        group.id,
        NewMessage(
            "hello\x00 team",
            formatted_content="<b>hello</b><script>x()</script>",
            mentions=(cat,),
            event_id="$m1",
        ),
        origin=Origin.MATRIX,
    )
    assert message is not None
    assert message.content == "hello team"
    assert message.formatted_content == "<b>hello</b>"
    assert message.format == "org.matrix.custom.html"
    refreshed = await services.messaging.get(conn, group.id)
    assert refreshed.last_message_at == message.sent_at
    rows = await conn.fetch("SELECT user_id, kind FROM notification ORDER BY kind")
    assert {(r["user_id"], r["kind"]) for r in rows} == {(cat, "mention"), (bob, "message")}
    # The same Matrix event again (a replay) creates nothing.
    again = await services.messaging.post(
        conn, ann, group.id, NewMessage("hello team", event_id="$m1"), origin=Origin.MATRIX
    )
    assert again is None
    assert await conn.fetchval("SELECT count(*) FROM message") == 1
    assert await conn.fetchval("SELECT count(*) FROM notification") == 2


async def test_edit_delete_and_delete_for_me(conn: asyncpg.Connection, services: Services) -> None:
    ann, bob = await people(conn, services, "Ann", "Bob")
    conv, _ = await services.messaging.open_direct(conn, ann, bob, origin=Origin.NETWORK)
    msg = await services.messaging.post(
        conn, ann, conv.id, NewMessage("one"), origin=Origin.NETWORK
    )
    assert msg is not None and msg.record_version == 1 and msg.edited_at is None
    with pytest.raises(Forbidden):
        await services.messaging.edit(conn, bob, msg.id, content="hacked")
    edited = await services.messaging.edit(conn, ann, msg.id, content="two", edit_event_id="$edit")
    assert edited is not None
    assert (edited.content, edited.record_version) == ("two", 2)
    assert edited.edited_at is not None
    assert (
        await services.messaging.edit(conn, ann, msg.id, content="two", edit_event_id="$edit")
        is None
    )
    assert (await services.messaging.find_by_event(conn, "$edit")).id == msg.id
    hidden = await services.messaging.delete_for(conn, bob, msg.id)
    assert hidden.deleted_for == (bob,)
    assert await services.messaging.list_messages(conn, bob, conv.id) == []
    assert [m.id for m in await services.messaging.list_messages(conn, ann, conv.id)] == [msg.id]
    with pytest.raises(Forbidden):
        await services.messaging.delete(conn, msg.id, actor=bob, origin=Origin.NETWORK)
    deleted = await services.messaging.delete(conn, msg.id, actor=ann, origin=Origin.NETWORK)
    assert not deleted.is_active and deleted.record_version == 3
    with pytest.raises(Conflict):
        await services.messaging.edit(conn, ann, msg.id, content="three")


async def test_reply_reactions_and_read_markers(
    conn: asyncpg.Connection, services: Services
) -> None:
    ann, bob = await people(conn, services, "Ann", "Bob")
    conv, _ = await services.messaging.open_direct(conn, ann, bob, origin=Origin.NETWORK)
    first = await services.messaging.post(
        conn, ann, conv.id, NewMessage("q"), origin=Origin.NETWORK
    )
    reply = await services.messaging.post(
        conn, bob, conv.id, NewMessage("a", reply_to_message_id=first.id), origin=Origin.NETWORK
    )
    assert reply.reply_to_message_id == first.id
    reaction = await services.messaging.react(conn, bob, first.id, "👍", event_id="$r1")
    assert reaction is not None
    assert (
        await services.messaging.react(conn, bob, first.id, "👍", event_id="$r2") is None
    )  # once per key
    assert [r.key for r in await services.messaging.reactions(conn, first.id)] == ["👍"]
    assert (await services.messaging.unreact_event(conn, "$r1")).key == "👍"
    assert await services.messaging.reactions(conn, first.id) == []
    assert await services.messaging.mark_read(conn, bob, first.id)
    assert (await services.messaging.get_message(conn, first.id)).read_by == (bob,)
    assert (await services.messaging.get_message(conn, reply.id)).read_by == ()
    assert await services.messaging.mark_read(conn, ann, reply.id)
    assert not await services.messaging.mark_read(conn, ann, first.id)  # never backwards
    assert (await services.messaging.get_message(conn, reply.id)).read_by == (ann,)


async def test_group_membership_changes(conn: asyncpg.Connection, services: Services) -> None:
    ann, bob, cat, dan, eve = await people(conn, services, "Ann", "Bob", "Cat", "Dan", "Eve")
    group = await services.messaging.create_group(conn, ann, [bob, dan], origin=Origin.NETWORK)
    with pytest.raises(Forbidden):
        await services.messaging.add_participants(
            conn, group.id, [eve], actor=eve, origin=Origin.NETWORK
        )
    assert await services.messaging.add_participants(
        conn, group.id, [cat, bob], actor=ann, origin=Origin.NETWORK
    ) == [cat]
    assert await services.messaging.remove_participant(
        conn, group.id, bob, actor=None, origin=Origin.MATRIX
    )
    assert set((await services.messaging.get(conn, group.id)).participant_ids) == {ann, cat, dan}


async def test_bad_messages_are_refused(conn: asyncpg.Connection, services: Services) -> None:
    ann, bob = await people(conn, services, "Ann", "Bob")
    conv, _ = await services.messaging.open_direct(conn, ann, bob, origin=Origin.NETWORK)
    with pytest.raises(BadRequest):
        await services.messaging.post(conn, ann, conv.id, NewMessage("   "), origin=Origin.NETWORK)
    with pytest.raises(BadRequest):
        await services.messaging.post(
            conn, ann, conv.id, NewMessage("x", msgtype="m.bogus"), origin=Origin.NETWORK
        )
    with pytest.raises(BadRequest):
        await services.messaging.post(
            conn,
            ann,
            conv.id,
            NewMessage("pic", msgtype="m.image", media={"url": "https://x"}),
            origin=Origin.NETWORK,
        )
    image = await services.messaging.post(
        conn,
        ann,
        conv.id,
        NewMessage(
            "pic.png",
            msgtype="m.image",
            media={"url": "mxc://hs/abc", "info": {"mimetype": "image/png"}},
        ),
        origin=Origin.NETWORK,
    )
    assert image.media == {"url": "mxc://hs/abc", "info": {"mimetype": "image/png"}}
