"""``/pod/v1``: Symphony's Pod API connection calls and the pod certificate.

Bodies and answers are Symphony's, not the reference envelope: ``UserConnection`` objects
(``userId``, ``status``, ``firstRequestedAt``, ``updatedAt`` in epoch milliseconds,
``requestCounter``) and errors as ``{"code", "message"}``. User ids are the network users'
numeric ids (int64); the seed-002 routes keep their UUIDs. The calls act through the same
networking service as the seed-002 routes, so Matrix sees them alike.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from msgspec import UNSET, Struct

from ..errors import BadRequest, Unavailable
from ..symphony.connections import Standing
from .context import ApiContext, principal_of
from .envelope import json_response
from .fields import UserNumber
from .operations import Answer, NoBody, Operation, Reply
from .queries import PublicQuery, Query, SymphonyListQuery
from .requests import UserConnectionRequest
from .resources import UserConnection
from .symphony_shapes import PodCertificate as PodCertificateBody
from .symphony_shapes import SuccessResponse

_NUMBER = re.compile("[1-9][0-9]{0,18}")
MAX_NUMBER = 2**63 - 1


class SymphonyError(Struct):
    """Symphony's ``Error`` body."""

    code: int
    message: str


def symphony_error(status: int, errcode: str, message: str, detail: str) -> web.Response:
    return json_response(SymphonyError(status, message), status=status)


def number_of(text: str, name: str) -> int:
    """A user id (int64, decimal) from the path or a list, or 400 naming ``name``."""
    text = text.strip()
    if not _NUMBER.fullmatch(text) or int(text) > MAX_NUMBER:
        raise BadRequest(f"{name} must be a user id (a positive int64 in decimal)")
    return int(text)


def _path_number(request: web.Request, name: str) -> int:
    return number_of(request.match_info[name], name)


def _render(standing: Standing) -> UserConnection:
    return UserConnection.of(
        standing.number, standing.status, standing.request, standing.connection
    )


class SymphonyApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._connections = ctx.symphony
        self._pod_cert = ctx.pod_cert

    def operations(self) -> list[Operation[Any, Any]]:
        user = (("userId", UserNumber),)
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
            Operation("get", "/v1/connection/user/{userId}/info", "symphonyConnectionInfo",
                      "Symphony: the standing with one user",
                      self.info, Query, NoBody, Answer(UserConnection), path_types=user),
            Operation("post", "/v1/connection/user/{uid}/remove", "symphonyRemoveConnection",
                      "Symphony: remove a connection (the direct room stays, unconnected)",
                      self.remove, Query, NoBody, Answer(SuccessResponse),
                      path_types=(("uid", UserNumber),)),
            Operation("get", "/v1/podcert", "symphonyPodCertificate",
                      "Symphony: the certificate verifying the session tokens the bridge issues",
                      self.podcert, PublicQuery, NoBody, Answer(PodCertificateBody),
                      errors=(503,), public=True),
        ]  # fmt: skip

    async def list_connections(
        self, request: web.Request, query: SymphonyListQuery, _: NoBody
    ) -> Reply:
        """The user's connections by ``status`` (default: both pending ones; ``ALL``: every
        one), optionally only with ``userIds`` (comma-separated numeric ids)."""
        numbers = (
            None
            if query.userIds is UNSET
            else [number_of(p, "userIds") for p in query.userIds.split(",")]
        )
        found = await self._connections.standings(
            principal_of(request).user_id, None if query.status is UNSET else query.status, numbers
        )
        return Reply([_render(standing) for standing in found])

    async def create(
        self, request: web.Request, query: Query, body: UserConnectionRequest
    ) -> Reply:
        """Invite ``userId`` to connect (answers with the standing as the inviter sees it)."""
        me = principal_of(request).user_id
        return Reply(_render(await self._connections.invite(me, body.userId)))

    async def accept(
        self, request: web.Request, query: Query, body: UserConnectionRequest
    ) -> Reply:
        me = principal_of(request).user_id
        return Reply(_render(await self._connections.answer(me, body.userId, accept=True)))

    async def reject(
        self, request: web.Request, query: Query, body: UserConnectionRequest
    ) -> Reply:
        me = principal_of(request).user_id
        return Reply(_render(await self._connections.answer(me, body.userId, accept=False)))

    async def info(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        """The standing with one user (404 when there is none)."""
        me, other = principal_of(request).user_id, _path_number(request, "userId")
        return Reply(_render(await self._connections.standing_with(me, other)))

    async def remove(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        """End the connection with ``uid`` (404 when not connected)."""
        await self._connections.remove(principal_of(request).user_id, _path_number(request, "uid"))
        return Reply(SuccessResponse("TEXT", "Connection Removed."))

    async def podcert(self, request: web.Request, _: PublicQuery, __: NoBody) -> Reply:
        if self._pod_cert is None:
            raise Unavailable("the bridge has no signing key (api.jwt.key_dir or private_key_file)")
        return Reply(PodCertificateBody(self._pod_cert.pem()))
