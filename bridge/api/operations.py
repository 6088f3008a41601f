"""The REST API's route table: each operation with its query, body and answer types.

An :class:`Operation` is both the aiohttp route (its handler gets the request's query and body
already decoded into the declared types) and the OpenAPI operation (:mod:`bridge.api.openapi`
documents it from the same types), so what is served and what is documented cannot drift.
Handlers return a :class:`Reply`; the operation renders it in the reference's envelope (or as it
is, for answers outside the envelope).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from ..errors import BridgeError
from .context import maybe_principal, started_of
from .decoding import decode_body, decode_query
from .envelope import Action, AppliedFilter, Envelope, Paging, enveloped, json_response
from .requests import Body
from .streaming import WholeReply, whole_paging, write_whole

Q = TypeVar("Q", bound=msgspec.Struct)
B = TypeVar("B", bound=Body)


class NoBody(Body):
    """The body of an operation that takes none (it is not read)."""


@dataclass(frozen=True)
class RenderedRows:
    """A list's rows already rendered as a JSON array (by the statement that read them, see
    :mod:`bridge.messaging.rendered`), and how many there are."""

    json: bytes
    count: int


@dataclass(frozen=True)
class Reply:
    """What a handler answers: the data, and for lists their paging and applied filters."""

    data: Any
    paging: Paging | UnsetType = UNSET
    filters: list[AppliedFilter] | UnsetType = UNSET
    status: int | None = None  # when not the operation's usual one
    headers: Mapping[str, str] | None = None  # e.g. Location, Cache-Control
    #: ``pageNumber=0``: every row, written as read (``data`` and ``paging`` are unused).
    whole: WholeReply | None = None


@dataclass(frozen=True)
class Answer:
    """An operation's success: ``resource`` under ``data_name`` in the envelope (a list of
    them when ``many``), or, without ``data_name``, the resource type as the whole body
    (``None``: no body, as a 204)."""

    resource: Any
    data_name: str | None = None
    many: bool = False
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses
    action: Action | None = None


@dataclass(frozen=True)
class Refusal:
    """A refusal an operation documents by name: when ``reason``, ``example`` (an instance
    of the error raised) is answered."""

    name: str
    reason: str
    example: BridgeError

    @property
    def status(self) -> int:
        return self.example.status


@dataclass(frozen=True)
class Operation(Generic[Q, B]):
    method: str
    path: str  # below its service's prefix
    operation_id: str
    summary: str
    handler: Callable[[web.Request, Q, B], Awaitable[Reply]]
    query: type[Q]
    body: type[B]
    answer: Answer
    #: Refusals beyond the usual (400 for bad input, 401/403/404 for the token and asUserId),
    #: by status or, to name a rule's refusal in the document, as a :class:`Refusal`.
    errors: tuple[int | Refusal, ...] = ()
    #: operationIds of the operations taking the id this one creates (or, for a list, the
    #: id of its first row): OpenAPI links, which a stateful client follows.
    links: tuple[str, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = field(default=())
    #: A body the handler reads itself (``body`` is then NoBody), documented with its media
    #: type, e.g. ``("application/x-www-form-urlencoded", TokenForm)``.
    raw_body: tuple[str, Any] | None = None
    #: The error body and media type when not the service's (e.g. RFC 6749 errors).
    error_body: tuple[str, Any] | None = None
    #: Served without a token even in a service that needs one (e.g. the pod certificate).
    public: bool = False
    #: The type of each path parameter that is not a UUID, e.g. ``(("uid", UserNumber),)``.
    path_types: tuple[tuple[str, Any], ...] = ()

    def route(self, version: str) -> web.RouteDef:
        async def serve(request: web.Request) -> web.StreamResponse:
            query = decode_query(request.query, self.query)
            body: Any = NoBody() if self.body is NoBody else await decode_body(request, self.body)
            reply = await self.handler(request, query, body)
            if reply.whole is not None:
                return await self._write_whole(request, reply, reply.whole, version)
            return self.render(request, reply, version)

        if self.method == "get":
            return web.get(self.path, serve, allow_head=False)
        return web.route(self.method.upper(), self.path, serve)

    def render(self, request: web.Request, reply: Reply, version: str) -> web.Response:
        response = self._render(request, reply, version)
        if reply.headers:
            response.headers.update(reply.headers)
        return response

    def _render(self, request: web.Request, reply: Reply, version: str) -> web.Response:
        answer = self.answer
        status = reply.status or answer.status
        if answer.resource is None and status == answer.status:
            return web.Response(status=status)
        if answer.data_name is None:
            return json_response(reply.data, status=status)
        data = reply.data
        rows: int | None
        if isinstance(data, RenderedRows):  # rows the database already wrote as JSON
            rows, data = data.count, msgspec.Raw(data.json)
        else:
            rows = len(data) if isinstance(data, list) else None
        envelope = self._envelope(request, reply, status, version, rows, reply.paging)
        return json_response(enveloped(envelope, data), status=status)

    def _envelope(
        self,
        request: web.Request,
        reply: Reply,
        status: int,
        version: str,
        rows: int | None,  # None: one resource, not a list
        paging: Paging | UnsetType,
    ) -> Envelope:
        started, request_id = started_of(request)
        principal = maybe_principal(request)
        answer = self.answer
        assert answer.data_name is not None
        return Envelope(
            status="OK",
            statusCode=status,
            elapsedMs=round((time.monotonic() - started) * 1000) if started else 0,
            source="db",
            userId=principal.user_id if principal else None,
            sessionId=principal.session_id if principal else None,
            requestId=request_id,
            dataName=answer.data_name,
            method=request.method,
            action=answer.action or _ACTIONS[self.method, answer.many],
            appVersion=version,
            rowCount=1 if rows is None else rows,
            paging=paging,
            filters=UNSET if rows is None else (reply.filters or []),
        )

    async def _write_whole(
        self, request: web.Request, reply: Reply, whole: WholeReply, version: str
    ) -> web.StreamResponse:
        """``pageNumber=0``: the envelope around every row, written as the rows are read."""
        status = self.answer.status

        def envelope_for(total: int) -> Envelope:
            paging = whole_paging(total, cursors=whole.cursors)
            return self._envelope(request, reply, status, version, total, paging)

        return await write_whole(request, whole, envelope_for, dict(reply.headers or {}))


_ACTIONS: dict[tuple[str, bool], Action] = {
    ("get", True): "list",
    ("get", False): "get",
    ("post", False): "create",
    ("post", True): "create",
    ("patch", False): "update",
    ("delete", False): "delete",
    ("put", False): "update",
}


@dataclass(frozen=True)
class Service:
    """Operations mounted under one prefix: ``public`` ones need no token; ``symphony``
    ones answer errors in Symphony's shape and also take its ``sessionToken`` header."""

    prefix: str
    operations: list[Operation[Any, Any]]
    public: bool = False
    symphony: bool = False
    #: Errors as RFC 9457 problem details (the credentials API, as Synqly's answers).
    problems: bool = False
