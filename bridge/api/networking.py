"""``/networking-api/v1``: connections and connection requests (reference: networking)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Forbidden
from ..networking.models import RequestFilter, RequestStatus
from .context import ApiContext, principal_of
from .decoding import path_id
from .filters import Filters
from .messaging import page_of
from .operations import Answer, NoBody, Operation, Reply
from .queries import ConnectionRequestsQuery, ConnectionsQuery, Query
from .requests import AnswerConnectionRequest, CreateConnection, CreateConnectionRequest
from .resources import Connection, ConnectionRequest
from .streaming import WholeReply

_STATUSES = {status.value: status for status in RequestStatus}


class NetworkingApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._networking = ctx.services.networking

    def operations(self) -> list[Operation[Any, Any]]:
        conn, req = "/v1/connections", "/v1/connectionrequests"
        connection = Answer(Connection, "connection")
        request = Answer(ConnectionRequest, "connectionRequest")
        return [
            Operation("get", conn, "listConnections", "The session user's connections",
                      self.list_connections, ConnectionsQuery, NoBody,
                      Answer(Connection, "connections", many=True), errors=(503,),
                      links=("getConnection", "deleteConnection")),
            Operation("post", conn, "createConnection", "Connect two users (administrators)",
                      self.create_connection, Query, CreateConnection,
                      Answer(Connection, "connection", status=201), errors=(409,),
                      links=("getConnection", "deleteConnection")),
            Operation("get", conn + "/{connectionId}", "getConnection",
                      "A connection (its users only)",
                      self.get_connection, Query, NoBody, connection),
            Operation("delete", conn + "/{connectionId}", "deleteConnection", "Disconnect",
                      self.delete_connection, Query, NoBody, connection),
            Operation("get", req, "listConnectionRequests",
                      "Requests the session user sent or received",
                      self.list_requests, ConnectionRequestsQuery, NoBody,
                      Answer(ConnectionRequest, "connectionRequests", many=True), errors=(503,),
                      links=("getConnectionRequest", "updateConnectionRequest",
                             "deleteConnectionRequest")),
            Operation("post", req, "createConnectionRequest",
                      "Ask to connect: 201 when it creates or renews a request (a renewal "
                      "raises requestCounter); 200 when the other had asked first, whose "
                      "request it accepts",
                      self.create_request, Query, CreateConnectionRequest,
                      Answer(ConnectionRequest, "connectionRequest", status=201, also=(200,)),
                      errors=(409,),
                      links=("getConnectionRequest", "updateConnectionRequest",
                             "deleteConnectionRequest")),
            Operation("get", req + "/{connectionRequestId}", "getConnectionRequest",
                      "A request (its parties only)",
                      self.get_request, Query, NoBody, request),
            Operation("patch", req + "/{connectionRequestId}", "updateConnectionRequest",
                      "Accept or reject (the receiver)",
                      self.update_request, Query, AnswerConnectionRequest, request,
                      errors=(409,)),
            Operation("delete", req + "/{connectionRequestId}", "deleteConnectionRequest",
                      "Delete a pending request (the seed's soft delete: isActive false from "
                      "then on): the sender cancels, the receiver rejects",
                      self.delete_request, Query, NoBody, request, errors=(409,)),
        ]  # fmt: skip

    # --- connections --------------------------------------------------------------------------

    async def list_connections(
        self, request: web.Request, query: ConnectionsQuery, _: NoBody
    ) -> Reply:
        me = principal_of(request).user_id
        if query.pageNumber == 0:
            return Reply([], filters=[], whole=WholeReply(
                lambda: self._networking.all_connections(me), Connection.of
            ))  # fmt: skip
        page = page_of(query)
        rows, total = await self._networking.connections_page(
            me, limit=page.limit, offset=page.offset
        )
        return Reply([Connection.of(c) for c in rows], paging=page.paging(total), filters=[])

    async def create_connection(
        self, request: web.Request, _: Query, body: CreateConnection
    ) -> Reply:
        """Connect two users directly: administrators only (users send requests)."""
        if not principal_of(request).is_admin:
            raise Forbidden("only administrators create connections; send a connection request")
        created = await self._networking.connect(body.userId1, body.userId2)
        return Reply(Connection.of(created))

    async def get_connection(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        connection_id = path_id(request, "connectionId")
        found = await self._networking.connection_for(me, connection_id)
        return Reply(Connection.of(found))

    async def delete_connection(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        connection_id = path_id(request, "connectionId")
        removed = await self._networking.end_connection(me, connection_id)
        return Reply(Connection.of(removed, active=False))

    # --- connection requests ------------------------------------------------------------------

    async def list_requests(
        self, request: web.Request, query: ConnectionRequestsQuery, _: NoBody
    ) -> Reply:
        me = principal_of(request).user_id
        page = page_of(query)
        f = Filters()
        filters = RequestFilter(statuses=f.choices("status", query.status, _STATUSES))
        if query.pageNumber == 0:
            return Reply([], filters=f.applied, whole=WholeReply(
                lambda: self._networking.all_requests(me, filters),
                ConnectionRequest.of,
            ))  # fmt: skip
        rows, total = await self._networking.requests_page(
            me, filters, limit=page.limit, offset=page.offset
        )
        return Reply(
            [ConnectionRequest.of(r) for r in rows], paging=page.paging(total), filters=f.applied
        )

    async def create_request(
        self, request: web.Request, _: Query, body: CreateConnectionRequest
    ) -> Reply:
        """Ask to connect: 201 for a new or renewed request, 200 when it accepts the other's."""
        me = principal_of(request).user_id
        message = body.message if isinstance(body.message, str) else None
        sent, created = await self._networking.ask(me, body.receiverUserId, message=message)
        renewed = sent.status is RequestStatus.PENDING  # not the other's request accepted
        return Reply(ConnectionRequest.of(sent), status=201 if created or renewed else 200)

    async def get_request(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        request_id = path_id(request, "connectionRequestId")
        found = await self._networking.request_for(me, request_id)
        return Reply(ConnectionRequest.of(found))

    async def update_request(
        self, request: web.Request, _: Query, body: AnswerConnectionRequest
    ) -> Reply:
        """The receiver accepts or rejects (``status``)."""
        me = principal_of(request).user_id
        request_id = path_id(request, "connectionRequestId")
        answered = await self._networking.answer(
            me, request_id, accept=body.status == RequestStatus.ACCEPTED.value
        )
        return Reply(ConnectionRequest.of(answered))

    async def delete_request(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        """Either party takes a pending request back: the sender cancels, the receiver rejects."""
        me = principal_of(request).user_id
        request_id = path_id(request, "connectionRequestId")
        withdrawn = await self._networking.take_back(me, request_id)
        return Reply(ConnectionRequest.of(withdrawn))
