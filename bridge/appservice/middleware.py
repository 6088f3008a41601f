"""Renders every error of the homeserver-facing surface as ``{"errcode", "error"}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import BridgeError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_ERRCODES = {
    404: ("M_UNRECOGNIZED", "unrecognized request"),
    405: ("M_UNRECOGNIZED", "method not allowed"),
    413: ("M_TOO_LARGE", "request body too large"),
}


def matrix_error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


def for_this_app(request: web.Request) -> bool:
    """Whether the request is for the app running the middleware, not one of its sub-apps.

    (Sub-apps, like the REST API, render errors in their own shape.)
    """
    apps = request.match_info.apps
    return not apps or apps[-1] is request.app


@web.middleware
async def matrix_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not for_this_app(request):
        return await handler(request)
    try:
        return await handler(request)
    except BridgeError as exc:
        return matrix_error(exc.status, exc.errcode, exc.message)
    except web.HTTPException as exc:
        if exc.status in _HTTP_ERRCODES:
            errcode, message = _HTTP_ERRCODES[exc.status]
            return matrix_error(exc.status, errcode, message)
        if exc.status >= 400:
            return matrix_error(exc.status, "M_UNKNOWN", exc.reason)
        raise
    except Exception:
        log.exception("Unhandled error serving %s %s", request.method, request.path)
        return matrix_error(500, "M_UNKNOWN", "internal server error")
