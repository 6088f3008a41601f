"""An access logger that never writes a token: ``access_token`` in the query is masked.

Pass it to the runner: ``web.AppRunner(app, access_log_class=RedactingAccessLogger, ...)``.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_TOKEN_RE = re.compile(r"(?i)((?:^|[?&])access_token=)[^&]*")


def redact(path_qs: str) -> str:
    return _TOKEN_RE.sub(r"\1REDACTED", path_qs)


class RedactingAccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        """Whether anyone reads the lines (aiohttp skips :meth:`log` otherwise)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return  # nothing formatted (the redaction included) for a line nobody reads
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %s %.3fs',
            request.remote,
            request.method,
            redact(request.path_qs),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
        )
