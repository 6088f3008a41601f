"""``/networking-api/v1``: connections and connection requests (reference: networking)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..errors import BadRequest, Forbidden
from ..ids import parse_uuid
from ..networking.models import RequestStatus
from . import body as b
from . import render
from .context import ApiContext, principal_of
from .envelope import Envelope
from .filters import Filters
from .paging import parse_page

_STATUSES = {status.value: status for status in RequestStatus}


def _path_id(request: web.Request, name: str) -> uuid.UUID:
    return parse_uuid(request.match_info[name], name)


class NetworkingApi:
    def __init__(self, ctx: ApiContext, envelope: Envelope) -> None:
        self._db = ctx.db
        self._users = ctx.services.users
        self._networking = ctx.services.networking
        self._env = envelope

    def routes(self) -> list[web.RouteDef]:
        conn, req = "/v1/connections", "/v1/connectionrequests"
        return [
            web.get(conn, self.list_connections, allow_head=False),
            web.post(conn, self.create_connection),
            web.get(conn + "/{connectionId}", self.get_connection, allow_head=False),
            web.delete(conn + "/{connectionId}", self.delete_connection),
            web.get(req, self.list_requests, allow_head=False),
            web.post(req, self.create_request),
            web.get(req + "/{connectionRequestId}", self.get_request, allow_head=False),
            web.patch(req + "/{connectionRequestId}", self.update_request),
            web.delete(req + "/{connectionRequestId}", self.delete_request),
        ]

    # --- connections --------------------------------------------------------------------------

    async def list_connections(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        page = parse_page(request.query)
        async with self._db.transaction() as conn:
            rows, total = await self._networking.list_connections_page(
                conn, me, limit=page.limit, offset=page.offset
            )
        return self._env.ok(
            request,
            data_name="connections",
            data=[render.connection(c) for c in rows],
            action="list",
            paging=page.describe(total),
        )

    async def create_connection(self, request: web.Request) -> web.Response:
        """Connect two users directly: administrators only (users send requests)."""
        if not principal_of(request).is_admin:
            raise Forbidden("only administrators create connections; send a connection request")
        body = await b.json_object(request)
        first, second = b.required_id(body, "userId1"), b.required_id(body, "userId2")
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, [first, second])
            created = await self._networking.connect_directly(conn, first, second)
        return self._env.ok(
            request,
            data_name="connection",
            data=render.connection(created),
            action="create",
            status=201,
        )

    async def get_connection(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        connection_id = _path_id(request, "connectionId")
        async with self._db.transaction() as conn:
            found = await self._networking.get_connection_for(conn, me, connection_id)
        return self._env.ok(
            request, data_name="connection", data=render.connection(found), action="get"
        )

    async def delete_connection(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        connection_id = _path_id(request, "connectionId")
        async with self._db.transaction() as conn:
            removed = await self._networking.disconnect_by_id(conn, me, connection_id)
        data = render.connection(removed) | {"isActive": False}
        return self._env.ok(request, data_name="connection", data=data, action="delete")

    # --- connection requests ------------------------------------------------------------------

    async def list_requests(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        page = parse_page(request.query)
        f = Filters(request.query)
        statuses = f.choices("status", _STATUSES)
        async with self._db.transaction() as conn:
            rows, total = await self._networking.list_requests_page(
                conn, me, statuses=statuses, limit=page.limit, offset=page.offset
            )
        return self._env.ok(
            request,
            data_name="connectionRequests",
            data=[render.connection_request(r) for r in rows],
            action="list",
            paging=page.describe(total),
            filters=f.applied,
        )

    async def create_request(self, request: web.Request) -> web.Response:
        """Ask to connect (a repeat raises the pending request's counter: 200, not 201)."""
        me = principal_of(request).user_id
        body = await b.json_object(request)
        receiver = b.required_id(body, "receiverUserId")
        status = b.text(body, "status")
        if status is not None and status.lower() != RequestStatus.PENDING.value:
            raise BadRequest("a new connection request's status can only be pending")
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, [receiver])
            sent, created = await self._networking.send_request(
                conn, me, receiver, message=b.text(body, "message")
            )
        return self._env.ok(
            request,
            data_name="connectionRequest",
            data=render.connection_request(sent),
            action="create",
            status=201 if created else 200,
        )

    async def get_request(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        request_id = _path_id(request, "connectionRequestId")
        async with self._db.transaction() as conn:
            found = await self._networking.get_request_for(conn, me, request_id)
        return self._env.ok(
            request,
            data_name="connectionRequest",
            data=render.connection_request(found),
            action="get",
        )

    async def update_request(self, request: web.Request) -> web.Response:
        """The receiver accepts or rejects (``status``)."""
        me = principal_of(request).user_id
        request_id = _path_id(request, "connectionRequestId")
        body = await b.json_object(request)
        status = (b.text(body, "status", required=True) or "").lower()
        if status not in (RequestStatus.ACCEPTED.value, RequestStatus.REJECTED.value):
            raise BadRequest("status must be accepted or rejected")
        async with self._db.transaction() as conn:
            await self._networking.get_request_for(conn, me, request_id)
            if status == RequestStatus.ACCEPTED.value:
                answered = await self._networking.accept(conn, receiver=me, request_id=request_id)
            else:
                answered = await self._networking.reject(conn, receiver=me, request_id=request_id)
        return self._env.ok(
            request,
            data_name="connectionRequest",
            data=render.connection_request(answered),
            action="update",
        )

    async def delete_request(self, request: web.Request) -> web.Response:
        """Either party takes a pending request back: the sender cancels, the receiver rejects."""
        me = principal_of(request).user_id
        request_id = _path_id(request, "connectionRequestId")
        async with self._db.transaction() as conn:
            withdrawn = await self._networking.withdraw(conn, me, request_id)
        return self._env.ok(
            request,
            data_name="connectionRequest",
            data=render.connection_request(withdrawn),
            action="delete",
        )
