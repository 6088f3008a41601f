"""What every REST request must satisfy before its handler (or its token check) runs.

- **Body size.** A body over ``api.max_body_size`` is refused with 413: by its
  ``Content-Length`` before anything is read, and a chunked one as soon as reading passes the
  limit (the REST API does not share the homeserver's much larger limit).
- **JSON only.** A request with a body must say ``Content-Type: application/json`` (UTF-8, the
  only charset JSON has): a cross-site ``<form>`` can post only ``text/plain``, URL-encoded or
  multipart bodies, so it never reaches a handler. The body must be JSON as RFC 8259 defines
  it (UTF-8 without a byte-order mark, no ``NaN``), nest at most 64 levels, hold no number
  past a double and no string Postgres can't store (U+0000, an unpaired surrogate): otherwise
  400, naming the field where there is one. Handlers then read a body that is safe to parse.
- **Cookie tokens and cross-site requests.** A browser sends the token cookie with requests
  that other sites make it send. When the token comes from that cookie (no query, bearer or
  header token), an unsafe request (anything but GET, HEAD, OPTIONS) must come from a page of
  an origin in ``api.allowed_origins``, by its ``Origin`` header or, without one, its
  ``Referer``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from aiohttp import web
from yarl import URL

from .. import strict_json
from ..config import ApiConfig
from ..errors import BadRequest, BridgeError, Forbidden, TooLarge
from ..http_errors import Check
from .auth import token_location

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_MEDIA_TYPE = "application/json"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsupportedMediaType(BridgeError):
    status = 415
    errcode = "M_NOT_JSON"


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL (default port left out), or None."""
    try:
        parsed = URL(url)
    except ValueError:
        return None
    scheme = (parsed.scheme or "").lower()
    if scheme not in _DEFAULT_PORTS or not parsed.raw_host:
        return None
    host = parsed.raw_host.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = parsed.explicit_port
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _check_size(request: web.Request, limit: int) -> web.Request:
    length = request.content_length
    if length is not None and length > limit:
        raise TooLarge(f"request body larger than {limit} bytes (api.max_body_size)")
    # A chunked body (no length) is refused by aiohttp once reading passes the limit.
    return request.clone(client_max_size=limit)


_JSON_SUFFIXED = re.compile(r"application/[a-z0-9.\-]+\+json")


def _check_media_type(request: web.Request) -> None:
    if not request.body_exists:
        return
    # application/json, or a JSON-based type (application/json-patch+json for a JSON Patch):
    # none of them is a type a cross-site <form> can send.
    if request.content_type != JSON_MEDIA_TYPE and not _JSON_SUFFIXED.fullmatch(
        request.content_type
    ):
        raise UnsupportedMediaType(
            f"a request body must be JSON sent as Content-Type: {JSON_MEDIA_TYPE}"
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("a JSON body is UTF-8: no other charset is accepted")


async def _check_json(request: web.Request) -> None:
    raw = await request.read()  # kept by aiohttp: the handler reads the same bytes
    if not raw.strip():
        return  # an empty body is the handler's to judge
    text = strict_json.decode_text(raw)
    value, out_of_range = strict_json.loads_flagged(text)
    if out_of_range:
        raise BadRequest("the body holds a number out of range (beyond a double)")
    if strict_json.nesting_depth(text, strict_json.MAX_DEPTH) > strict_json.MAX_DEPTH:
        raise BadRequest(f"the body nests deeper than {strict_json.MAX_DEPTH} levels")
    if strict_json.UNSTORABLE_ESCAPE.search(text):
        path = strict_json.unstorable_path(value)
        if path is not None:
            raise BadRequest(f"{path} holds U+0000 or an unpaired surrogate, which is not text")


def _check_origin(request: web.Request, allowed: frozenset[str]) -> None:
    origin_header = request.headers.get("Origin")
    if origin_header is not None:
        origin = origin_of(origin_header)
        named = "Origin"
    else:
        referer = request.headers.get("Referer")
        origin = origin_of(referer) if referer is not None else None
        named = "Referer"
        if referer is None:
            raise Forbidden(
                "a request authenticated by the token cookie must carry an Origin or Referer "
                "header (or send the token in the Authorization header)"
            )
    if origin is None or origin not in allowed:
        raise Forbidden(
            f"requests authenticated by the token cookie are not accepted from this {named}; "
            "its origin must be listed in api.allowed_origins"
        )


def request_guard(
    config: ApiConfig,
    *,
    symphony: bool = False,
    own_body: Collection[Callable[..., Any]] = (),
) -> Check:
    """The guard of a REST sub-application, a check run by its error middleware before the
    token check, for requests that matched a route. ``own_body`` names the handlers that read
    and check a body of another media type themselves (the OAuth token endpoint's form)."""
    own = frozenset(own_body)
    limit = config.max_body_size
    allowed = frozenset(filter(None, (origin_of(o) for o in config.allowed_origins)))

    async def guard(request: web.Request) -> web.Request:
        if (
            request.method not in SAFE_METHODS
            and token_location(request, config.token_name, symphony=symphony) == "cookie"
        ):
            _check_origin(request, allowed)
        if not request.body_exists:
            return request  # nothing to read, so no limit to set and no body to check
        request = _check_size(request, limit)
        # A handler with a body of another media type reads and refuses it itself (the OAuth
        # token endpoint answers RFC 6749 errors).
        if request.match_info.handler not in own:
            _check_media_type(request)
            await _check_json(request)
        return request

    return guard
