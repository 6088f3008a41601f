"""``bridge dead-letters`` round trip, run as the command line it is, against a live bridge."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from tests.conftest import config_data
from tests.ops.bed import Bed, message, poll

REPO = Path(__file__).resolve().parents[2]


async def bridge_cli(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        *args,
        "-c",
        str(config),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_list_show_replay_twice_and_drop(
    bed: Bed, conn: asyncpg.Connection, dsn: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    data: dict[str, Any] = config_data(homeserver__address=bed.hs.url, appservice__database=dsn)
    config.write_text(yaml.safe_dump(data))
    bed.flaky.broken.add("$ops1")
    assert await bed.put_txn("1", [message(1), {"no": "ids"}]) == 200

    async def dead() -> bool:
        return bool(await conn.fetchval("SELECT count(*) FROM dead_letter") == 2)

    await poll(dead)
    code, out, err = await bridge_cli(config, "dead-letters", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [x["source"] for x in listed] == ["inbox", "intake"]
    inbox_letter, intake_letter = listed[0]["id"], listed[1]["id"]
    assert listed[0]["event_id"] == "$ops1" and "handler broken" in listed[0]["error"]

    code, out, _ = await bridge_cli(config, "dead-letters", "show", str(inbox_letter))
    shown = json.loads(out)
    assert code == 0 and shown["payload"]["content"]["body"] == "hello 1"
    code, _, err = await bridge_cli(config, "dead-letters", "show", "999999")
    assert code == 1 and "no dead letter 999999" in err

    bed.flaky.broken.clear()
    code, out, _ = await bridge_cli(config, "dead-letters", "replay", str(inbox_letter))
    assert code == 0 and out.split() == [str(inbox_letter), "replayed"]
    code, out, _ = await bridge_cli(config, "dead-letters", "replay", str(inbox_letter))
    assert code == 0 and out.strip() == f"{inbox_letter}\talready replayed"

    async def processed() -> bool:
        state = await conn.fetchval("SELECT state FROM inbox WHERE event_id = '$ops1'")
        return bool(state == "processed")

    await poll(processed)
    assert bed.flaky.processed.count("$ops1") == 1  # replayed twice, processed once

    # Still malformed: refused, and left waiting.
    code, out, _ = await bridge_cli(config, "dead-letters", "replay", str(intake_letter))
    assert code == 1 and "refused" in out and "still malformed" in out

    code, out, _ = await bridge_cli(config, "dead-letters", "list")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == [str(intake_letter)]
    code, out, _ = await bridge_cli(config, "dead-letters", "list", "--all", "--since", "1h")
    assert len(out.splitlines()) == 2 and "replayed (processed)" in out

    code, out, _ = await bridge_cli(config, "dead-letters", "drop", str(intake_letter), "424242")
    assert code == 1
    assert out.splitlines() == [f"{intake_letter}\tdropped", "424242\tnot found"]
    assert await conn.fetchval("SELECT count(*) FROM dead_letter") == 1
    code, out, err = await bridge_cli(config, "dead-letters", "list", "--since", "yesterday")
    assert code == 2 and "--since" in err
