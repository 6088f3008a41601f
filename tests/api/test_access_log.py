"""The access log formats a line only when someone reads it, and never shows a token."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bridge.api.access_log import RedactingAccessLogger


def test_access_lines_only_when_read(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access")
    access = RedactingAccessLogger(logger, "")
    request = make_mocked_request("GET", "/x?access_token=secret&a=1")
    response = web.Response(text="ok")
    with caplog.at_level(logging.WARNING, logger="test.access"):
        assert not access.enabled
        access.log(request, response, 0.01)
        assert caplog.records == []
    with caplog.at_level(logging.INFO, logger="test.access"):
        assert access.enabled
        access.log(request, response, 0.01)
        (record,) = caplog.records
        assert "access_token=REDACTED&a=1" in record.getMessage()
        assert "secret" not in record.getMessage()
