"""``/pod/v1/connection``: Symphony's Pod API connection calls over the same requests.

Bodies and answers are Symphony's, not the reference's envelope: ``UserConnection`` objects
(``userId``, ``status``, ``firstRequestedAt``, ``updatedAt`` in epoch milliseconds,
``requestCounter``) and errors as ``{"code", "message"}``. User ids are network UUIDs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import BadRequest
from ..ids import parse_uuid
from ..networking.models import RequestStatus
from . import body as b
from . import render
from .context import ApiContext, principal_of
from .envelope import json_response
from .paging import single

PENDING = ("PENDING_INCOMING", "PENDING_OUTGOING")
STATUSES = ("PENDING_INCOMING", "PENDING_OUTGOING", "ACCEPTED", "REJECTED")
MAX_USER_IDS = 500


def symphony_error(status: int, message: str, detail: str) -> dict[str, Any]:
    """Symphony's ``Error`` body."""
    return {"code": status, "message": message}


class SymphonyApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._db = ctx.db
        self._users = ctx.services.users
        self._networking = ctx.services.networking

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/connection/list", self.list_connections, allow_head=False),
            web.post("/v1/connection/create", self.create),
            web.post("/v1/connection/accept", self.accept),
            web.post("/v1/connection/reject", self.reject),
        ]

    async def list_connections(self, request: web.Request) -> web.Response:
        """The user's connections by ``status`` (default: both pending ones; ``ALL``: every
        one), optionally only with ``userIds`` (comma-separated)."""
        me = principal_of(request).user_id
        raw_status = (single(request.query, "status") or "").upper()
        if raw_status and raw_status not in (*STATUSES, "ALL"):
            raise BadRequest(
                "status must be PENDING_INCOMING, PENDING_OUTGOING, ACCEPTED, REJECTED or ALL"
            )
        wanted = STATUSES if raw_status == "ALL" else (raw_status,) if raw_status else PENDING
        raw_ids = single(request.query, "userIds")
        other_ids = None
        if raw_ids is not None:
            parts = [p.strip() for p in raw_ids.split(",") if p.strip()]
            if len(parts) > MAX_USER_IDS:
                raise BadRequest(f"userIds: at most {MAX_USER_IDS} ids")
            other_ids = [parse_uuid(p, "userIds") for p in parts]
        async with self._db.transaction() as conn:
            standings = await self._networking.relations(conn, me, other_ids)
        return json_response(
            [
                render.user_connection(other, status, request_, link)
                for other, status, request_, link in standings
                if status in wanted
            ]
        )

    async def create(self, request: web.Request) -> web.Response:
        """Invite ``userId`` to connect (answers with the standing as the inviter sees it)."""
        me = principal_of(request).user_id
        other = b.required_id(await b.json_object(request), "userId")
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, [other])
            sent, _ = await self._networking.send_request(conn, me, other)
        status = "ACCEPTED" if sent.status is RequestStatus.ACCEPTED else sent.seen_from(me)
        return json_response(render.user_connection(other, status, sent, None))

    async def accept(self, request: web.Request) -> web.Response:
        return await self._answer(request, accept=True)

    async def reject(self, request: web.Request) -> web.Response:
        return await self._answer(request, accept=False)

    async def _answer(self, request: web.Request, *, accept: bool) -> web.Response:
        me = principal_of(request).user_id
        sender = b.required_id(await b.json_object(request), "userId")
        async with self._db.transaction() as conn:
            answered = await self._networking.answer_from(conn, me, sender, accept=accept)
        return json_response(
            render.user_connection(sender, answered.status.value.upper(), answered, None)
        )
