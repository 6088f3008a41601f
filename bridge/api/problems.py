"""RFC 9457 problem details, the error body of the credentials API (as Synqly's API answers):
``{"type", "title", "status", "detail", "instance", "occurred_at"}`` as
``application/problem+json``, rendered by the one error middleware of :mod:`bridge.http_errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..http_errors import Check, error_middleware, reason

PROBLEM_JSON = "application/problem+json"
_HTTP_DETAILS = {404: "no such route", 405: "method not allowed on this route"}


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    occurred_at: datetime


def problem_response(instance: str, status: int, detail: str) -> web.Response:
    problem = Problem(
        title=reason(status),
        status=status,
        detail=detail,
        instance=instance,
        occurred_at=datetime.now(UTC),
    )
    response = web.Response(
        body=msgspec.json.encode(problem), status=status, content_type=PROBLEM_JSON
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer, Basic realm="bridge"'
    return response


def problem_middleware(checks: Sequence[Check] = ()) -> Middleware:
    """The one middleware of a sub-application whose errors are problem details (with its
    ``checks``: see :func:`~bridge.http_errors.error_middleware`)."""

    @web.middleware
    async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        instance = request.path  # the path only: a query may carry a token

        def render(status: int, _errcode: str, message: str, _detail: str) -> web.Response:
            return problem_response(instance, status, message)

        errors = error_middleware(render, messages=_HTTP_DETAILS, checks=checks)
        return await errors(request, handler)

    return problems
