"""The reference's response envelope and error body.

Success::

    {"status": "OK", "statusCode": 200, "elapsedMs": 3, "source": "db", "userId": "...",
     "sessionId": "...", "requestId": "...", "dataName": "messages", "method": "GET",
     "action": "list", "appVersion": "0.1.0", "rowCount": 2, "messages": [...],
     "paging": {...}, "filters": [...], "uiPermissions": []}

The seed's ``ssoTime`` and ``cacheKey`` are left out: the bridge verifies tokens itself (no
single-sign-on round trip to time) and answers every request from Postgres (no cache, so
``source`` is always ``db``).

Error (every BridgeError, aiohttp 404/405/413, bad JSON, and anything unexpected as a 500 that
reveals nothing)::

    {"result": "ERR", "status": 400, "message": "...", "errCode": 400,
     "date": "2024-03-19T12:13:54.124Z", "detail": "Bad Request"}
"""

from __future__ import annotations

import math
import os
import random
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from aiohttp import web
from msgspec import UNSET, Struct, UnsetType

from ..errors import BadRequest
from .context import set_started
from .fields import Timestamp
from .queries import MAX_ROWS, REQUEST_ID_PATTERN
from .resources import iso

_REQUEST_ID_RE = re.compile(REQUEST_ID_PATTERN)
Action = Literal["get", "list", "create", "update", "delete"]
_ENCODER = msgspec.json.Encoder()


def json_response(data: object, *, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(data), status=status, content_type="application/json")


class NetworkError(Struct):
    """The reference's error body."""

    result: Literal["ERR"]
    status: int
    message: str
    errCode: int
    date: Timestamp
    detail: str


def network_error(status: int, errcode: str, message: str, detail: str) -> web.Response:
    body = NetworkError("ERR", status, message, status, iso(datetime.now(UTC)), detail)
    response = json_response(body, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


#: What the error body says for aiohttp's own errors.
HTTP_MESSAGES = {
    404: "no such route",
    405: "method not allowed on this route",
    413: "request body too large",
}


#: Request ids name a request, they guard nothing: drawn without a system call per request.
_REQUEST_IDS = random.Random(secrets.randbits(128))  # noqa: S311 (an id, not a secret)
os.register_at_fork(after_in_child=lambda: _REQUEST_IDS.seed(secrets.randbits(128)))


def start_request(request: web.Request) -> None:
    """Stamp the start time and request id (the client's ``requestId``, or a random one)."""
    given = request.query.get("requestId")
    if given is not None and not _REQUEST_ID_RE.fullmatch(given):
        raise BadRequest("requestId must be 1 to 64 letters, digits or ._-")
    set_started(request, time.monotonic(), given or f"{_REQUEST_IDS.getrandbits(128):032x}")


class Paging(Struct):
    pageNumber: int | None
    pageRowCount: int
    totalRowCount: int
    pageCount: int
    #: Lists with cursors: pass it as ``cursor=`` for the next page; null when no rows follow.
    nextCursor: str | UnsetType | None = UNSET


class AppliedFilter(Struct):
    name: str
    values: list[str]


class Envelope(Struct):
    """The envelope's own fields; the data goes under the name in ``dataName``."""

    status: Literal["OK"]
    statusCode: int
    elapsedMs: int
    #: Where the data came from: always the database (the bridge keeps no cache).
    source: Literal["db"]
    userId: uuid.UUID | None
    #: The token's session (its ``sid``, else its ``jti`` claim); null when it names none.
    sessionId: str | None
    requestId: str | None
    dataName: str
    method: str
    action: Action
    appVersion: str
    rowCount: int
    paging: Paging | UnsetType = UNSET
    filters: list[AppliedFilter] | UnsetType = UNSET
    uiPermissions: list[str] = msgspec.field(default_factory=list)


def enveloped(envelope: Envelope, data: object) -> dict[str, Any]:
    """The body: the envelope's fields, the data under ``dataName`` after ``rowCount``."""
    body: dict[str, Any] = {}
    for name in Envelope.__struct_fields__:
        value = getattr(envelope, name)
        if value is not UNSET:
            body[name] = value
        if name == "rowCount":
            body[envelope.dataName] = data
    return body


class PageRequest(Struct, frozen=True):
    """The page a list request asked for (``pageNumber`` 0, every row, is written as it is
    read instead: :mod:`bridge.api.streaming`)."""

    number: int
    rows: int
    by_cursor: bool = False

    @property
    def limit(self) -> int:
        return MAX_ROWS if self.number == 0 else self.rows

    @property
    def offset(self) -> int:
        return 0 if self.number == 0 else (self.number - 1) * self.rows

    def paging(self, total: int, *, next_cursor: str | UnsetType | None = UNSET) -> Paging:
        """The envelope's ``paging``; ``pageNumber`` is null on a page a cursor asked for
        (its number in the whole list is not known)."""
        size = self.limit
        return Paging(
            pageNumber=None if self.by_cursor else self.number,
            pageRowCount=size,
            totalRowCount=total,
            pageCount=math.ceil(total / size) if total else 0,
            nextCursor=next_cursor,
        )
