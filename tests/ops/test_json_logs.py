"""Log lines written while a transaction is handled carry its id (JSON format)."""

from __future__ import annotations

import io
import json
import logging

from bridge.logs import JsonFormatter
from tests.ops.bed import Bed, message


async def test_a_transactions_log_lines_carry_its_txn_id(bed: Bed) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bridge")
    logger.addHandler(handler)
    try:
        assert await bed.put_txn("777", [message(1), {"not": "an event"}]) == 200
    finally:
        logger.removeHandler(handler)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    dead_lettered = [e for e in entries if "malformed event" in str(e["message"])]
    assert dead_lettered and all(e["txn_id"] == "777" for e in dead_lettered)
