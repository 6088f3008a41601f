"""RFC 9457 problem details, the error body of the credentials API (as Synqly's API answers):
``{"type", "title", "status", "detail", "instance", "occurred_at"}`` as
``application/problem+json``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from http import HTTPStatus

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..errors import BridgeError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(msgspec.Struct, kw_only=True):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    occurred_at: datetime


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(request: web.Request, status: int, detail: str) -> web.Response:
    problem = Problem(
        title=_title(status),
        status=status,
        detail=detail,
        instance=request.path,  # the path only: a query may carry a token
        occurred_at=datetime.now(UTC),
    )
    response = web.Response(
        body=msgspec.json.encode(problem), status=status, content_type=PROBLEM_JSON
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer, Basic realm="bridge"'
    return response


_HTTP_DETAILS = {404: "no such route", 405: "method not allowed on this route"}


def problem_middleware() -> Middleware:
    """The outermost middleware of a sub-application whose errors are problem details."""

    @web.middleware
    async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except BridgeError as exc:
            return problem_response(request, exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem_response(
                request, exc.status, _HTTP_DETAILS.get(exc.status, exc.reason)
            )
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception:
            log.exception("Unhandled error serving %s %s", request.method, request.path)
            return problem_response(request, 500, "internal server error")

    return problems
