"""Logging setup: human-readable text or one JSON object per line.

JSON lines carry ``time``, ``level``, ``logger`` and ``message``, plus ``txn_id``, ``room_id``
and ``event_id`` where known: from :func:`log_context` (the transaction being received) or
from a call's ``extra=``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler

from .config import LoggingConfig

#: Fields a JSON line takes from the context or the record, when set.
CONTEXT_KEYS = ("txn_id", "room_id", "event_id")
_CONTEXT: ContextVar[Mapping[str, str] | None] = ContextVar("bridge_log_context", default=None)
_TXN_PATH = re.compile(r"(?:/_matrix/app/v1)?/transactions/([^/]{1,255})")


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add fields to every log line written inside the block (in this task)."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


@web.middleware
async def transaction_log_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log lines written while a homeserver transaction is handled carry its ``txn_id``."""
    match = _TXN_PATH.fullmatch(request.path) if request.method == "PUT" else None
    if match is None:
        return await handler(request)
    with log_context(txn_id=match.group(1)):
        return await handler(request)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_CONTEXT.get() or {})
        for key in CONTEXT_KEYS:
            value = record.__dict__.get(key)
            if isinstance(value, str):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(config: LoggingConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    # aiohttp's access log names every request; keep it for DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if config.level == "DEBUG" else logging.WARNING
    )
