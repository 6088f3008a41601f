"""An access logger that never writes a token: ``access_token`` in the query is masked.

Pass it to the runner: ``web.AppRunner(app, access_log_class=RedactingAccessLogger, ...)``.
A line costs what it must when someone reads it (a record, its formatting, the write) and
nothing when nobody does; the caller's frame is not looked up (it would always be aiohttp's).
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_TOKEN_RE = re.compile(r"(?i)((?:^|[?&])access_token=)[^&]*")
_FORMAT = '%s "%s %s HTTP/%d.%d" %d %s %.3fs'


def redact(path_qs: str) -> str:
    if "access_token" not in path_qs.lower():
        return path_qs
    return _TOKEN_RE.sub(r"\1REDACTED", path_qs)


class RedactingAccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        """Whether anyone reads the lines (aiohttp skips :meth:`log` otherwise)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return  # nothing formatted (the redaction included) for a line nobody reads
        version = request.version
        args = (
            request.remote,
            request.method,
            redact(request.path_qs),
            version.major,
            version.minor,
            response.status,
            response.body_length,
            time,
        )
        record = logger.makeRecord(logger.name, logging.INFO, "(access)", 0, _FORMAT, args, None)
        logger.handle(record)
