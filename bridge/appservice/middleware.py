"""Renders every error of the homeserver-facing surface as ``{"errcode", "error"}``."""

from __future__ import annotations

from aiohttp import web

from ..http_errors import error_middleware


def matrix_error(status: int, errcode: str, message: str, detail: str = "") -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


#: Requests for sub-applications (the REST API) pass through: they render errors their way.
matrix_errors = error_middleware(matrix_error, own_requests_only=True)
