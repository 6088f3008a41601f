"""The REST API as the demo's network users call it: minted tokens, the seed's envelope."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from ..cli_token import mint_token
from ..config import Config


class RestError(RuntimeError):
    """The REST API answered with an error status."""


class DemoRest:
    """Calls the bridge's REST API as network users (tokens signed with the bridge's key)."""

    def __init__(self, config: Config, session: aiohttp.ClientSession) -> None:
        self._config = config
        self._session = session
        self.base_url = config.appservice.address

    def token(
        self, user_id: uuid.UUID, name: str, *, ttl: int = 3600, admin: bool = False
    ) -> str:
        return mint_token(self._config, user_id, name=name, ttl=ttl, admin=admin)

    async def call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The decoded envelope of a 2xx answer; :class:`RestError` otherwise."""
        async with self._session.request(
            method,
            f"{self.base_url}{path}",
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            data = await resp.json(content_type=None)
            if not 200 <= resp.status < 300 or not isinstance(data, dict):
                raise RestError(f"{method} {path}: HTTP {resp.status} {data}")
            return data
