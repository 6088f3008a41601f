"""The one error middleware of every HTTP surface: a BridgeError, an aiohttp HTTP error or
anything unexpected becomes one response in the surface's own error shape.

Each surface (the homeserver-facing API, each REST sub-application) passes the function that
renders its error body; nothing else differs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import BridgeError

log = logging.getLogger(__name__)

#: Renders an error: (status, errcode, message, detail) to a response.
ErrorRenderer = Callable[[int, str, str, str], web.Response]

#: A check a request must pass before its handler (the REST API's request guard, its token
#: check): the request to go on with (possibly a clone), or a raised error.
Check = Callable[[web.Request], Awaitable[web.Request]]

#: What aiohttp's own HTTP errors say, with the errcode they carry.
HTTP_ERRORS: Mapping[int, tuple[str, str]] = {
    404: ("M_UNRECOGNIZED", "unrecognized request"),
    405: ("M_UNRECOGNIZED", "method not allowed"),
    413: ("M_TOO_LARGE", "request body too large"),
}


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_middleware(
    render: ErrorRenderer,
    *,
    messages: Mapping[int, str] | None = None,
    prepare: Callable[[web.Request], None] | None = None,
    own_requests_only: bool = False,
    checks: Sequence[Check] = (),
) -> Middleware:
    """The outermost middleware of a surface.

    ``messages`` overrides what aiohttp's 404/405/413 say; ``prepare`` runs first for every
    request (its BridgeError is rendered like any other); ``checks`` then run in order for a
    request that matched a route (no such route or method: 404 / 405 first), in this one
    middleware rather than one nested middleware each; with ``own_requests_only``, requests
    for sub-applications (which render errors their own way) pass through untouched.
    """
    checks = tuple(checks)
    overrides = messages or {}

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if own_requests_only:
            apps = request.match_info.apps
            if apps and apps[-1] is not request.app:
                return await handler(request)
        try:
            if prepare is not None:
                prepare(request)
            if checks and request.match_info.http_exception is None:
                for check in checks:
                    request = await check(request)
            return await handler(request)
        except BridgeError as exc:
            detail = str(exc.extra.get("detail") or reason(exc.status))
            return render(exc.status, exc.errcode, exc.message, detail)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            errcode, message = HTTP_ERRORS.get(exc.status, ("M_UNKNOWN", exc.reason))
            response = render(exc.status, errcode, overrides.get(exc.status, message), exc.reason)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception:
            # The path only: the query string may carry an access token.
            log.exception("Unhandled error serving %s %s", request.method, request.path)
            return render(500, "M_UNKNOWN", "internal server error", reason(500))

    return errors
