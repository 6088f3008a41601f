"""The mapping between network ids and Matrix ids (ghosts, portal aliases, the bot)."""

from __future__ import annotations

import re
import uuid

from ..config import Config

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class MatrixIds:
    """Ghost MXIDs and portal aliases from the configured templates, and back."""

    def __init__(self, config: Config) -> None:
        self.domain = config.homeserver.domain
        self.bot = config.bot_mxid
        user_before, _, user_after = config.bridge.username_template.partition("{userid}")
        alias_before, _, alias_after = config.bridge.alias_template.partition("{conversationid}")
        self._user_template = config.bridge.username_template
        self._alias_template = config.bridge.alias_template
        domain = re.escape(self.domain)
        # Matched with fullmatch: "$" would also match before a trailing newline.
        self._ghost_re = re.compile(
            f"@{re.escape(user_before)}({_UUID}){re.escape(user_after)}:{domain}"
        )
        self._alias_re = re.compile(
            f"#{re.escape(alias_before)}({_UUID}){re.escape(alias_after)}:{domain}"
        )

    def ghost(self, network_user_id: uuid.UUID) -> str:
        localpart = self._user_template.replace("{userid}", str(network_user_id))
        return f"@{localpart}:{self.domain}"

    def alias_localpart(self, conversation_id: uuid.UUID) -> str:
        return self._alias_template.replace("{conversationid}", str(conversation_id))

    def alias(self, conversation_id: uuid.UUID) -> str:
        return f"#{self.alias_localpart(conversation_id)}:{self.domain}"

    def network_user_of(self, user_id: str) -> uuid.UUID | None:
        """The network user behind a ghost MXID (server part checked), or None."""
        match = self._ghost_re.fullmatch(user_id)
        return uuid.UUID(match.group(1)) if match else None

    def conversation_of(self, alias: str) -> uuid.UUID | None:
        match = self._alias_re.fullmatch(alias)
        return uuid.UUID(match.group(1)) if match else None

    def is_bot(self, user_id: str) -> bool:
        return user_id == self.bot

    def is_bridged(self, user_id: str) -> bool:
        """The bot or one of its ghosts: their events are echoes of the bridge's own."""
        return self.is_bot(user_id) or self.network_user_of(user_id) is not None
