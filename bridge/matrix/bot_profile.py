"""The bridge bot's own profile: its display name and avatar as configured, set at start."""

from __future__ import annotations

import asyncio
import logging

from ..config import AppserviceConfig
from .outbox.intents import Intents

log = logging.getLogger(__name__)

_FIRST_RETRY = 5.0
_MAX_RETRY = 300.0


def bot_profile(config: AppserviceConfig) -> dict[str, str | None]:
    """The profile the config asks for: ``bot_displayname``, and ``bot_avatar`` if set."""
    profile: dict[str, str | None] = {"displayname": config.bot_displayname}
    if config.bot_avatar is not None:
        profile["avatar_url"] = config.bot_avatar
    return profile


async def apply_bot_profile(intents: Intents, config: AppserviceConfig) -> None:
    """Set the bot's profile; a value the homeserver already has is not set again."""
    await intents.set_profile(intents.bot_mxid, bot_profile(config))


async def keep_applying_bot_profile(intents: Intents, config: AppserviceConfig) -> None:
    """:func:`apply_bot_profile` until it succeeds (the homeserver may not be up yet),
    backing off from 5 s to 5 minutes between tries; cancel it to give up."""
    wait = _FIRST_RETRY
    while True:
        try:
            await apply_bot_profile(intents, config)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Could not set the bot's profile (retrying in %.0f s): %s", wait, exc)
        else:
            log.info("Bot profile set: %s", config.bot_displayname)
            return
        await asyncio.sleep(wait)
        wait = min(wait * 2, _MAX_RETRY)
