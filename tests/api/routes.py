"""Every REST route of a mounted application, from its router: tests cover routes added later
without being told about them."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def rest_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route of every sub-application (the REST API)."""
    found: list[tuple[str, str]] = []
    for resource in app.router.resources():
        if not isinstance(resource, web.PrefixedSubAppResource):
            continue
        for route in resource._app.router.routes():
            if route.method in ("HEAD", "*"):
                continue
            info = route.resource.get_info() if route.resource is not None else {}
            path = info.get("path") or info.get("formatter") or ""
            found.append((route.method, path))  # (a sub-app's paths include its prefix)
    return sorted(set(found))


def fill(template: str, value: Any = None) -> str:
    """The template with each ``{param}`` replaced (a fresh UUID unless ``value`` is given)."""
    return _PARAM.sub(lambda _: str(value if value is not None else uuid.uuid4()), template)
