"""Notification titles are checked after cleaning, on every path that creates notifications."""

from __future__ import annotations

import asyncpg
import pytest

from bridge.errors import BadRequest
from bridge.messaging.models import NewMessage, Origin
from tests.domain.conftest import Services
from tests.domain.test_messaging import people


@pytest.mark.parametrize("title", ["\u200b", "\x00\x07", " \u2028 ", "\ufeff\u200e"])
async def test_a_title_that_cleaning_empties_is_refused(
    conn: asyncpg.Connection, services: Services, title: str
) -> None:
    (ann,) = await people(conn, services, "Ann")
    with pytest.raises(BadRequest, match=r"notification\.title"):
        await services.notifications.notify(conn, [ann], kind="x", title=title, body="b")
    with pytest.raises(BadRequest, match=r"notification\.title"):
        await services.notifications.send([ann], kind="x", title=title, body="b")
    assert await conn.fetchval("SELECT count(*) FROM notification") == 0


async def test_a_group_whose_title_cleans_to_nothing_still_notifies(
    conn: asyncpg.Connection, services: Services
) -> None:
    ann, bob, cat = await people(conn, services, "Ann", "Bob", "Cat")
    group = await services.messaging.create_group(
        conn, ann, [bob, cat], title="\u200b", origin=Origin.NETWORK
    )
    await services.messaging.post(conn, ann, group.id, NewMessage("hi"), origin=Origin.NETWORK)
    titles = {r["title"] for r in await conn.fetch("SELECT title FROM notification")}
    assert titles == {"New message"}
