"""Reading a request body that must be a JSON object."""

from __future__ import annotations

import json
from typing import Any

from .errors import BadRequest, NotJson


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or 400 (``M_NOT_JSON`` when it is not JSON at all).

    Lone surrogates decode (a homeserver's transaction may hold one in a single event, which is
    then dead-lettered alone); nesting past the parser's limit is not JSON it can read.
    """
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise NotJson("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body
