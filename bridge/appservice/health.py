"""Liveness and readiness (``/_matrix/mau/live``, ``/_matrix/mau/ready``); no token needed."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from ..db.database import Database
from ..db.schema import SchemaError, check_schema

log = logging.getLogger(__name__)


class Health:
    def __init__(self, db: Database) -> None:
        self._db = db

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_matrix/mau/live", self.live),
            web.get("/_matrix/mau/ready", self.ready),
        ]

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def ready(self, request: web.Request) -> web.Response:
        """Ready: the database answers and its schema is at head."""
        try:
            async with self._db.acquire() as conn:
                revision = await check_schema(conn)
        except SchemaError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=503)
        except (OSError, RuntimeError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("Readiness check: database unavailable: %s", exc)
            return web.json_response({"ok": False, "error": "database unavailable"}, status=503)
        return web.json_response({"ok": True, "schema": revision})
