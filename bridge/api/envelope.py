"""The reference's response envelope and error body, and the middleware that renders errors.

Success::

    {"status": "OK", "statusCode": 200, "elapsedMs": 3, "userId": "...", "requestId": "...",
     "dataName": "messages", "method": "GET", "action": "list", "appVersion": "0.1.0",
     "rowCount": 2, "messages": [...], "paging": {...}, "filters": [...], "uiPermissions": []}

Error (every BridgeError, aiohttp 404/405/413, bad JSON, and anything unexpected as a 500 that
reveals nothing)::

    {"result": "ERR", "status": 400, "message": "...", "errCode": 400,
     "date": "2024-03-19T12:13:54.124Z", "detail": "Bad Request"}
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..errors import BadRequest, BridgeError
from .context import maybe_principal, set_started, started_of

log = logging.getLogger(__name__)

ErrorRenderer = Callable[[int, str, str], dict[str, Any]]

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, to the microsecond (lossless, so usable in filters)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(data: object) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False)


def json_response(data: object, *, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def network_error(status: int, message: str, detail: str) -> dict[str, Any]:
    return {
        "result": "ERR",
        "status": status,
        "message": message,
        "errCode": status,
        "date": iso(datetime.now(UTC)),
        "detail": detail,
    }


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_HTTP_MESSAGES = {
    404: "no such route",
    405: "method not allowed on this route",
    413: "request body too large",
}


def error_middleware(render: ErrorRenderer = network_error) -> Middleware:
    """The outermost middleware of each API sub-application: timing, request id, errors."""

    @web.middleware
    async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        try:
            set_started(request, started, _request_id(request))
            return await handler(request)
        except BridgeError as exc:
            detail = str(exc.extra.get("detail") or _reason(exc.status))
            response = json_response(render(exc.status, exc.message, detail), status=exc.status)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = _HTTP_MESSAGES.get(exc.status, exc.reason)
            response = json_response(render(exc.status, message, exc.reason), status=exc.status)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception:
            # The path only: the query string may carry an access token.
            log.exception("Unhandled error serving %s %s", request.method, request.path)
            return json_response(render(500, "internal server error", _reason(500)), status=500)

    return api_errors


def _request_id(request: web.Request) -> str:
    given = request.query.get("requestId")
    if given is None:
        return secrets.token_hex(16)
    if not _REQUEST_ID_RE.match(given):
        raise BadRequest("requestId must be 1 to 64 letters, digits or ._-")
    return given


class Envelope:
    """Builds success responses for one API version (``appVersion``)."""

    def __init__(self, version: str) -> None:
        self.version = version

    def ok(
        self,
        request: web.Request,
        *,
        data_name: str,
        data: dict[str, Any] | list[dict[str, Any]],
        action: str,
        status: int = 200,
        paging: dict[str, int | str | None] | None = None,
        filters: list[dict[str, Any]] | None = None,
    ) -> web.Response:
        started, request_id = started_of(request)
        principal = maybe_principal(request)
        body: dict[str, Any] = {
            "status": "OK",
            "statusCode": status,
            "elapsedMs": round((time.monotonic() - started) * 1000) if started else 0,
            "userId": str(principal.user_id) if principal else None,
            "requestId": request_id,
            "dataName": data_name,
            "method": request.method,
            "action": action,
            "appVersion": self.version,
            "rowCount": len(data) if isinstance(data, list) else 1,
            data_name: data,
        }
        if paging is not None:
            body["paging"] = paging
        if isinstance(data, list):
            body["filters"] = filters or []
        body["uiPermissions"] = []
        return json_response(body, status=status)
