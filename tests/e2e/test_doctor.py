"""``bridge doctor`` against the real Synapse: passes on the bed, names each problem."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from alembic import command

from bridge.db.schema import alembic_config, head_revision
from tests.e2e.bed import BridgeProcess, SynapseProcess, free_port

pytestmark = pytest.mark.e2e


async def doctor(
    bridge: BridgeProcess, config: dict[str, Any] | None = None, tmp: Path | None = None
) -> tuple[int, dict[str, Any]]:
    """Run ``bridge doctor --json`` on the bed's config (or a changed copy of it)."""
    config_path = bridge.config_path
    registration = config_path.parent / "registration.yaml"
    if config is not None:
        assert tmp is not None
        config_path = tmp / "config.yaml"
        config.setdefault("appservice", {})["embedded_data_dir"] = str(bridge.data_dir)
        config_path.write_text(yaml.safe_dump(config))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "doctor",
        "-c",
        str(config_path),
        "-r",
        str(registration),
        "--json",
        cwd=bridge.cwd,
        env=bridge.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert out, err.decode()
    return int(proc.returncode or 0), json.loads(out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def changed(bridge: BridgeProcess, **sections: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load(bridge.config_path.read_text())
    for section, values in sections.items():
        config[section].update(values)
    return dict(config)


async def test_doctor_passes_on_the_bed(bridge: BridgeProcess, homeserver: SynapseProcess) -> None:
    code, report = await doctor(bridge)
    checks = by_name(report)
    assert code == 0 and report["ok"], report
    assert list(checks) == [
        "config",
        "registration",
        "homeserver",
        "appservice token",
        "ping",
        "database",
        "jwt",
        "clock",
    ]
    assert "reached the bridge" in checks["ping"]["detail"]
    assert "running bridge" in checks["database"]["detail"]
    assert head_revision() in checks["database"]["detail"]
    assert "v1." in checks["homeserver"]["detail"]


async def test_doctor_names_a_wrong_hs_token(
    bridge: BridgeProcess, homeserver: SynapseProcess, tmp_path: Path
) -> None:
    code, report = await doctor(
        bridge, changed(bridge, appservice={"hs_token": "not-the-registered-one"}), tmp_path
    )
    checks = by_name(report)
    assert code == 1 and not report["ok"]
    assert not checks["registration"]["ok"]
    assert "hs_token" in checks["registration"]["detail"]
    assert "generate-registration" in checks["registration"]["fix"]


async def test_doctor_names_a_wrong_url(
    bridge: BridgeProcess, homeserver: SynapseProcess, tmp_path: Path
) -> None:
    wrong_bridge = changed(bridge, appservice={"address": f"http://127.0.0.1:{free_port()}"})
    code, report = await doctor(bridge, wrong_bridge, tmp_path)
    checks = by_name(report)
    assert code == 1 and "url" in checks["registration"]["detail"]

    wrong_hs = changed(bridge, homeserver={"address": f"http://127.0.0.1:{free_port()}"})
    code, report = await doctor(bridge, wrong_hs, tmp_path)
    checks = by_name(report)
    assert code == 1 and not checks["homeserver"]["ok"]
    assert "did not answer" in checks["homeserver"]["detail"]
    assert "homeserver.address" in checks["homeserver"]["fix"]


async def test_doctor_names_a_stopped_homeserver(
    bridge: BridgeProcess, homeserver: SynapseProcess
) -> None:
    await homeserver.astop()
    try:
        code, report = await doctor(bridge)
    finally:
        await homeserver.astart()
    checks = by_name(report)
    assert code == 1
    assert [name for name, c in checks.items() if not c["ok"]] == [
        "homeserver",
        "appservice token",
        "ping",
        "clock",
    ]
    assert "start the homeserver" in checks["homeserver"]["fix"]
    assert checks["database"]["ok"] and checks["registration"]["ok"]


async def test_doctor_names_an_old_schema(
    bridge: BridgeProcess, homeserver: SynapseProcess, tmp_path: Path
) -> None:
    name = f"doctor_old_{free_port()}"
    admin = await asyncpg.connect(bridge.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    old_dsn = bridge.dsn().replace("/bridge?", f"/{name}?")
    await asyncio.to_thread(command.upgrade, alembic_config(old_dsn), "0004")
    code, report = await doctor(bridge, changed(bridge, appservice={"database": old_dsn}), tmp_path)
    checks = by_name(report)
    assert code == 1
    assert [n for n, c in checks.items() if not c["ok"]] == ["database"]
    assert (
        "0004" in checks["database"]["detail"] and head_revision() in checks["database"]["detail"]
    )
    assert "bridge migrate" in checks["database"]["fix"]
