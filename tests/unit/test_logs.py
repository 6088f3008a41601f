"""JSON log lines: one object per line, with the transaction, room and event where known."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge.config import LoggingConfig
from bridge.logs import log_context, setup_logging


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging(LoggingConfig(level="INFO", format="json"))
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_object_per_line_with_the_basics(captured: io.StringIO) -> None:
    logging.getLogger("bridge.test").warning("two\nlines: %s", "ü")
    (entry,) = lines(captured)
    assert entry["level"] == "WARNING" and entry["logger"] == "bridge.test"
    assert entry["message"] == "two\nlines: ü"
    assert str(entry["time"]).endswith("+00:00")
    assert "txn_id" not in entry


def test_context_and_extra_fields(captured: io.StringIO) -> None:
    log = logging.getLogger("bridge.test")
    with log_context(txn_id="42"):
        log.info("inside", extra={"room_id": "!r:x", "event_id": "$e"})
        with log_context(room_id="!other:x"):
            log.info("nested")
    log.info("outside")
    inside, nested, outside = lines(captured)
    assert (inside["txn_id"], inside["room_id"], inside["event_id"]) == ("42", "!r:x", "$e")
    assert (nested["txn_id"], nested["room_id"]) == ("42", "!other:x")
    assert "txn_id" not in outside


def test_exceptions_stay_inside_the_object(captured: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bridge.test").exception("failed")
    (entry,) = lines(captured)
    assert "ValueError: boom" in str(entry["exception"])
