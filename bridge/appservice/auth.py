"""The homeserver's token: ``Authorization: Bearer`` and/or legacy ``?access_token=``."""

from __future__ import annotations

import hmac

from aiohttp import web

from ..bearer import bearer_token
from ..errors import Forbidden, Unauthorized


def check_hs_token(request: web.Request, hs_token: str) -> None:
    """Raise 401 when no token came, 403 when a token is wrong or header and query disagree."""
    expected = hs_token.encode()
    candidates = (bearer_token(request), request.query.get("access_token"))
    supplied = [t for t in candidates if t is not None]
    if not supplied:
        raise Unauthorized("missing access token")
    # Every supplied token must match; compare all of them so timing says nothing.
    results = [hmac.compare_digest(t.encode(), expected) for t in supplied]
    if not all(results):
        raise Forbidden("invalid access token")
