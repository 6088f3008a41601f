"""The one error type raised anywhere and rendered by each HTTP surface's middleware."""

from __future__ import annotations

from typing import Any


class BridgeError(Exception):
    """An error with an HTTP status and a machine-readable code.

    The Matrix-facing middleware renders it as ``{"errcode", "error"}``; the REST API renders
    it as the seed's error body. Raise it from services and handlers; never build an error
    response by hand.
    """

    status: int = 500
    errcode: str = "M_UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errcode: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if errcode is not None:
            self.errcode = errcode
        self.extra = extra or {}


class BadRequest(BridgeError):
    status = 400
    errcode = "M_BAD_JSON"


class NotJson(BridgeError):
    status = 400
    errcode = "M_NOT_JSON"


class Unauthorized(BridgeError):
    status = 401
    errcode = "M_UNAUTHORIZED"


class Forbidden(BridgeError):
    status = 403
    errcode = "M_FORBIDDEN"


class NotFound(BridgeError):
    status = 404
    errcode = "M_NOT_FOUND"


class Conflict(BridgeError):
    status = 409
    errcode = "M_CONFLICT"


class TooLarge(BridgeError):
    status = 413
    errcode = "M_TOO_LARGE"


class Unavailable(BridgeError):
    status = 503
    errcode = "M_UNAVAILABLE"
