"""``/pod/v1/connection``: Symphony's Pod API connection calls over the same requests.

Bodies and answers are Symphony's, not the seed envelope: ``UserConnection`` objects
(``userId``, ``status``, ``firstRequestedAt``, ``updatedAt`` in epoch milliseconds,
``requestCounter``) and errors as ``{"code", "message"}``. User ids are network UUIDs.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from msgspec import UNSET, Struct

from ..networking.models import RequestStatus
from .context import ApiContext, principal_of
from .envelope import json_response
from .operations import Answer, NoBody, Operation, Reply
from .queries import Query, SymphonyListQuery
from .requests import UserConnectionRequest
from .resources import UserConnection

PENDING = ("PENDING_INCOMING", "PENDING_OUTGOING")
STATUSES = ("PENDING_INCOMING", "PENDING_OUTGOING", "ACCEPTED", "REJECTED")


class SymphonyError(Struct):
    """Symphony's ``Error`` body."""

    code: int
    message: str


def symphony_error(status: int, errcode: str, message: str, detail: str) -> web.Response:
    return json_response(SymphonyError(status, message), status=status)


class SymphonyApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._networking = ctx.services.networking

    def operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation("get", "/v1/connection/list", "symphonyListConnections",
                      "Symphony: connections by status (both pending ones by default)",
                      self.list_connections, SymphonyListQuery, NoBody,
                      Answer(list[UserConnection])),
            *(
                Operation("post", f"/v1/connection/{verb}", f"symphony{verb.title()}Connection",
                          summary, handler, Query, UserConnectionRequest,
                          Answer(UserConnection), errors=(409,))
                for verb, summary, handler in (
                    ("create", "Symphony: invite a user to connect", self.create),
                    ("accept", "Symphony: accept a user's invitation", self.accept),
                    ("reject", "Symphony: reject a user's invitation", self.reject),
                )
            ),
        ]  # fmt: skip

    async def list_connections(
        self, request: web.Request, query: SymphonyListQuery, _: NoBody
    ) -> Reply:
        """The user's connections by ``status`` (default: both pending ones; ``ALL``: every
        one), optionally only with ``userIds`` (comma-separated)."""
        me = principal_of(request).user_id
        status = query.status
        wanted = PENDING if status is UNSET else STATUSES if status == "ALL" else (status,)
        other_ids = None
        if query.userIds is not UNSET:
            other_ids = [uuid.UUID(p.strip()) for p in query.userIds.split(",")]
        standings = await self._networking.standings(me, other_ids)
        return Reply(
            [
                UserConnection.of(other, status_, request_, link)
                for other, status_, request_, link in standings
                if status_ in wanted
            ]
        )

    async def create(
        self, request: web.Request, query: Query, body: UserConnectionRequest
    ) -> Reply:
        """Invite ``userId`` to connect (answers with the standing as the inviter sees it)."""
        me = principal_of(request).user_id
        other = body.userId
        sent, _ = await self._networking.ask(me, other)
        status = "ACCEPTED" if sent.status is RequestStatus.ACCEPTED else sent.seen_from(me)
        return Reply(UserConnection.of(other, status, sent, None))

    async def accept(
        self, request: web.Request, query: Query, body: UserConnectionRequest
    ) -> Reply:
        return await self._answer(request, body, accept=True)

    async def reject(
        self, request: web.Request, query: Query, body: UserConnectionRequest
    ) -> Reply:
        return await self._answer(request, body, accept=False)

    async def _answer(
        self, request: web.Request, body: UserConnectionRequest, *, accept: bool
    ) -> Reply:
        me = principal_of(request).user_id
        answered = await self._networking.answer_user(me, body.userId, accept=accept)
        return Reply(UserConnection.of(body.userId, answered.status.value.upper(), answered, None))
