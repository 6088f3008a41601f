"""The bot's configured display name and avatar, set at start against a fake homeserver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession

from bridge.config import parse_config
from bridge.matrix import bot_profile
from bridge.matrix.bot_profile import apply_bot_profile, keep_applying_bot_profile
from bridge.matrix.outbox.intents import Intents
from tests.conftest import AS_TOKEN, config_data
from tests.fake_homeserver import FakeHomeserver

BOT = "@_pn_bot:localhost"


@pytest.fixture
async def intents(hs: FakeHomeserver) -> AsyncIterator[Intents]:
    async with ClientSession() as session:
        yield Intents(session, homeserver_url=hs.url, as_token=AS_TOKEN, bot_mxid=BOT)


def settings(**appservice: Any) -> Any:
    overrides = {f"appservice__{k}": v for k, v in appservice.items()}
    return parse_config(config_data(**overrides)).appservice


async def test_the_configured_profile_is_set_once(hs: FakeHomeserver, intents: Intents) -> None:
    config = settings(bot_displayname="Network bot", bot_avatar="mxc://localhost/botface")
    await apply_bot_profile(intents, config)
    assert hs.profiles[BOT] == {
        "displayname": "Network bot",
        "avatar_url": "mxc://localhost/botface",
    }
    puts = [c for c in hs.calls_to("/profile/", "PUT")]
    assert [(c.user_id, c.path.rsplit("/", 1)[1]) for c in puts] == [
        (BOT, "displayname"),
        (BOT, "avatar_url"),
    ]
    # At the next start nothing changed: the profile is read, not written again.
    await apply_bot_profile(intents, config)
    assert len(hs.calls_to("/profile/", "PUT")) == 2
    # A new name is set; the avatar, unchanged, is left alone.
    await apply_bot_profile(
        intents, settings(bot_displayname="Renamed", bot_avatar="mxc://localhost/botface")
    )
    assert hs.profiles[BOT]["displayname"] == "Renamed"
    assert [c.path.rsplit("/", 1)[1] for c in hs.calls_to("/profile/", "PUT")][2:] == [
        "displayname"
    ]


async def test_without_an_avatar_only_the_name_is_set(hs: FakeHomeserver, intents: Intents) -> None:
    await apply_bot_profile(intents, settings())
    assert hs.profiles[BOT] == {"displayname": "Network bridge bot"}


async def test_a_homeserver_not_up_yet_is_retried(
    hs: FakeHomeserver, intents: Intents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot_profile, "_FIRST_RETRY", 0.01)
    hs.fail("/profile/", status=502, errcode="M_UNKNOWN", times=2)
    await keep_applying_bot_profile(intents, settings(bot_displayname="Patient bot"))
    assert hs.profiles[BOT] == {"displayname": "Patient bot"}
    assert [c.status for c in hs.calls_to("/profile/")][:2] == [502, 502]
