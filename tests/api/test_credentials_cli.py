"""``bridge credentials add|list|delete|rotate-key`` and ``bridge keys rotate``, through the CLI's
``main`` on a real database; ``generate-registration`` creating the key file."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
import yaml

from bridge.api.signing_keys import SigningKeys, key_files
from bridge.cli import main
from bridge.config import load_config
from bridge.credentials.crypto import parse_keys
from bridge.credentials.setup import build_credentials
from bridge.db.database import Database
from bridge.users.service import UserService
from bridge.users.store import UserStore
from tests.conftest import config_data


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """The command's output lines (run in a thread: it runs its own event loop)."""
    assert await asyncio.to_thread(main, list(argv)) == 0
    return capsys.readouterr().out.strip().splitlines()


async def test_credentials_cli(
    dsn: str, conn: asyncpg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    data = config_data(appservice__database=dsn, api={"jwt": {"key_dir": "older-keys"}})
    path.write_text(yaml.safe_dump(data))
    out = await _run(
        capsys, "generate-registration", "-c", str(path), "-r", str(tmp_path / "reg.yaml")
    )
    key_file = tmp_path / "credentials.key"
    assert any(str(key_file) in line for line in out)
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert len(parse_keys(key_file.read_text(), "f")) == 1

    owner = uuid.uuid4()
    await conn.execute("INSERT INTO network_user (id, display_name) VALUES ($1, 'Ann')", owner)
    config = str(path)
    lines = await _run(
        capsys,
        *("credentials", "add", "-c", config, "--owner", str(owner), "--type", "token"),
        *("--name", "ops-key", "--expires", "2099-01-01T00:00:00Z"),
    )
    added = dict(line.split("\t", 1) for line in lines if "\t" in line)
    assert added["name"] == "ops-key" and len(added["secret"]) >= 43
    assert await conn.fetchval("SELECT managed FROM credential WHERE name = 'ops-key'") == "Managed"
    listed = await _run(capsys, "credentials", "list", "-c", config, "--owner", str(owner))
    assert len(listed) == 1 and listed[0].startswith(
        f"{added['id']}\tops-key\ttoken\tManaged\t2099"
    )

    async def authenticates() -> uuid.UUID:
        db = Database(dsn, min_size=1, max_size=1)
        await db.open()
        try:
            auth = build_credentials(
                load_config(path), db, UserService(db, UserStore()), environ={}
            ).auth
            return (await auth.api_key(added["secret"])).owner_id
        finally:
            await db.close()

    assert await authenticates() == owner
    rotated = await _run(capsys, "credentials", "rotate-key", "-c", config)
    new_kid = parse_keys(key_file.read_text(), "f")[-1][0]
    assert rotated == [f"added key {new_kid}", f"re-encrypted 1 credential(s) under key {new_kid}"]
    assert await conn.fetchval("SELECT key_id FROM credential") == new_kid
    assert await authenticates() == owner

    assert await _run(
        capsys, "credentials", "delete", "-c", config, "--owner", str(owner), added["id"]
    ) == [f"deleted {added['id']}"]
    assert await _run(capsys, "credentials", "list", "-c", config, "--owner", str(owner)) == []

    settings = load_config(path).api.jwt
    assert settings.private_key_file is not None and settings.key_dir is not None
    first = SigningKeys(settings.private_key_file, settings.key_dir).current().kid
    out = await _run(capsys, "keys", "rotate", "-c", config)
    keys = SigningKeys(settings.private_key_file, settings.key_dir)
    assert out == [f"new signing key {keys.current().kid}"] and keys.current().kid != first
    assert first in keys.trusted() and len(key_files(settings.key_dir)) == 1


def test_cli_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(appservice__database="postgresql://127.0.0.1:1/x")))
    assert main(["credentials", "list", "-c", str(path), "--owner", "nope"]) != 0
    assert "--owner" in capsys.readouterr().err
    bad = config_data(credentials={"admin_accounts": ["not-a-uuid"]})
    path.write_text(yaml.safe_dump(bad))
    assert main(["check-config", "-c", str(path)]) == 2
    assert "credentials.admin_accounts[0]" in capsys.readouterr().err
