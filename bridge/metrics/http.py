"""HTTP hooks: REST requests (an aiohttp middleware) and homeserver requests (a client
``TraceConfig``), recorded with bounded labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from . import Metrics

#: Path prefixes of the REST API (everything else on the port is the homeserver's or admin's).
REST_PREFIXES = (
    "/messaging-api/",
    "/networking-api/",
    "/notification-api/",
    "/pod/",
    "/auth-api/",
    "/openapi.json",
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(request: web.Request) -> str:
    """The matched route's template (``/messaging-api/v1/conversations/{id}``), never the raw
    path; 'unmatched' when no route matched."""
    match_info = request.match_info
    resource = match_info.route.resource
    if resource is None or match_info.http_exception is not None:
        return "unmatched"
    return str(resource.canonical)


async def _measured(
    request: web.Request, handler: Handler, record: Callable[[int, float], None]
) -> web.StreamResponse:
    """Run the handler; ``record`` gets the status answered (500 for a crash) and seconds."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        record(status, time.perf_counter() - started)


def rest_metrics_middleware(metrics: Metrics) -> Middleware:
    """Count and time REST API requests by route template and status."""

    # The labelled children, found once per (route, method, status): the label sets are
    # bounded (route templates), and looking a child up takes the metric's lock every time.
    children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(REST_PREFIXES):
            return await handler(request)

        def record(status: int, seconds: float) -> None:
            route = route_label(request)
            method = request.method if request.method in _METHODS else "OTHER"
            key = (route, method, status)
            child = children.get(key)
            if child is None:
                child = children[key] = (
                    metrics.rest_requests.labels(route, method, str(status)),
                    metrics.rest_seconds.labels(route),
                )
            child[0].inc()
            child[1].observe(seconds)

        return await _measured(request, handler, record)

    return measure


def homeserver_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """Time every request of a client session (the one talking to the homeserver)."""
    trace = aiohttp.TraceConfig()

    async def start(_: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        ctx.started = time.perf_counter()

    def record(ctx: SimpleNamespace, method: str, outcome: str) -> None:
        started = getattr(ctx, "started", None)
        if started is None:
            return
        method = method if method in _METHODS else "OTHER"
        metrics.homeserver_seconds.labels(method, outcome).observe(time.perf_counter() - started)

    async def end(_: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        record(ctx, params.method, f"{params.response.status // 100}xx")

    async def failed(_: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        record(ctx, params.method, "error")

    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return trace


def _transaction_result(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 503:
        return "refused"  # a forced retry (transaction gap) or the bridge unavailable
    if status in (401, 403):
        return "unauthorized"
    return "rejected" if status < 500 else "error"


def appservice_metrics_middleware(metrics: Metrics) -> Middleware:
    """Count and time the homeserver's transactions (``PUT .../transactions/{txnId}``)."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "PUT" or "/transactions/" not in request.path:
            return await handler(request)

        def record(status: int, seconds: float) -> None:
            metrics.transactions.labels(_transaction_result(status)).inc()
            metrics.intake_seconds.observe(seconds)

        return await _measured(request, handler, record)

    return measure
