"""The homeserver's token: ``Authorization: Bearer`` and/or legacy ``?access_token=``."""

from __future__ import annotations

import hmac

from aiohttp import web

from ..errors import Forbidden, Unauthorized


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_hs_token(request: web.Request, hs_token: str) -> None:
    """Raise 401 when no token came, 403 when a token is wrong or header and query disagree."""
    expected = hs_token.encode()
    supplied = [t for t in (_bearer(request), request.query.get("access_token")) if t is not None]
    if not supplied:
        raise Unauthorized("missing access token")
    # Every supplied token must match; compare all of them so timing says nothing.
    results = [hmac.compare_digest(t.encode(), expected) for t in supplied]
    if not all(results):
        raise Forbidden("invalid access token")
