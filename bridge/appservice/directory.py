"""What the homeserver may ask the bridge about: users, aliases and third-party lookups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Directory(Protocol):
    """Answers the homeserver's queries. Implemented by the domain layer."""

    async def query_user(self, user_id: str) -> bool:
        """Make the ghost ``user_id`` exist (registered) if it belongs to a network user."""

    async def query_alias(self, alias: str) -> bool:
        """Make the portal room of ``alias`` exist if it names a conversation."""

    async def lookup_users(self, fields: Mapping[str, str]) -> list[dict[str, Any]]:
        """Third-party users matching ``fields`` (``[{userid, protocol, fields}]``)."""

    async def lookup_locations(self, fields: Mapping[str, str]) -> list[dict[str, Any]]:
        """Third-party locations matching ``fields`` (``[{alias, protocol, fields}]``)."""

    async def user_by_mxid(self, user_id: str) -> list[dict[str, Any]]:
        """The third-party user behind a Matrix user id, if any."""

    async def location_by_alias(self, alias: str) -> list[dict[str, Any]]:
        """The third-party location behind a room alias, if any."""
