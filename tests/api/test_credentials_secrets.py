"""Secrets at rest and in logs: no column of any table holds one, a ciphertext moved to another
row does not open, rotation re-encrypts with reads before and after, captured logs hold none."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.config import ConfigError
from bridge.credentials.crypto import (
    DecryptionError,
    Keyring,
    KeySource,
    add_key,
    create_key_file,
    new_key_line,
    parse_keys,
)
from bridge.credentials.service import rotate_key
from tests.api.credentials_bed import BASE, Bed, basic

SECRETS = {
    "aws": {
        "type": "aws",
        "access_key_id": "AKIAPUBLIC",
        "secret_access_key": "S3cr3t-aws-key",
        "session": "S3cr3t-session",
    },
    "token": {"type": "token", "secret": "S3cr3t-token-0123456789"},
    "basic": {"type": "basic", "username": "svc", "secret": "S3cr3t-basic"},
    "secret": {"type": "secret", "secret": "S3cr3t-plain"},
    "oauth": {
        "type": "oauth_client",
        "client_id": "cid",
        "client_secret": "S3cr3t-oauth-0123456789",
        "extra": {"k": "S3cr3t-extra"},
    },
}
NEEDLES = (
    "S3cr3t-aws-key",
    "S3cr3t-session",
    "S3cr3t-token-0123456789",
    "S3cr3t-basic",
    "S3cr3t-plain",
    "S3cr3t-oauth-0123456789",
    "S3cr3t-extra",
)


async def _every_value(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """Every column of every table in the database, as text (bytea as hex and as bytes)."""
    tables = await conn.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    )
    found = []
    for table in tables:
        name = f'"{table["table_schema"]}"."{table["table_name"]}"'
        rows = await conn.fetch(f"SELECT * FROM {name}")
        for row in rows:
            for column, value in row.items():
                if isinstance(value, bytes):
                    text = value.hex() + value.decode("latin-1")
                else:
                    text = str(value)
                found.append((name, column, text))
    return found


async def _create_all(bed: Bed, owner: uuid.UUID) -> dict[str, dict[str, Any]]:
    return {name: await bed.create(owner, config, name=name) for name, config in SECRETS.items()}


async def test_no_secret_in_any_column_of_any_table(bed: Bed, conn: asyncpg.Connection) -> None:
    owner = await bed.person()
    made = await _create_all(bed, owner)
    generated = await bed.create(owner, {"type": "token"}, name="generated")
    # Patch and replace paths write secrets too.
    await bed.call(
        "PATCH",
        f"{BASE}/{owner}/{made['secret']['id']}",
        owner,
        json=[{"op": "replace", "path": "/config/secret", "value": "S3cr3t-plain"}],
    )
    values = await _every_value(conn)
    assert any(table.endswith('"credential"') for table, _, _ in values)
    for needle in (*NEEDLES, generated["config"]["secret"]):
        for table, column, text in values:
            assert needle not in text, (needle, table, column)


async def test_a_ciphertext_moved_to_another_row_does_not_open(
    bed: Bed, conn: asyncpg.Connection
) -> None:
    owner = await bed.person()
    first = await bed.create(
        owner, {"type": "basic", "username": "a", "secret": "password-a"}, name="a"
    )
    second = await bed.create(
        owner, {"type": "basic", "username": "b", "secret": "password-b"}, name="b"
    )
    assert (
        await bed.call("GET", "/messaging-api/v1/conversations", auth=basic("b", "password-b"))
    ).status == 200
    # Give b the ciphertext of a's password, and the lookup hash a's would have.
    await conn.execute(
        "UPDATE credential SET sealed = (SELECT sealed FROM credential WHERE id = $1) WHERE id = $2",
        uuid.UUID(first["id"]),
        uuid.UUID(second["id"]),
    )
    keyring = bed.credentials.keys.get()
    assert keyring is not None
    await conn.execute(
        "UPDATE credential SET lookup_hash = $1 WHERE id = $2",
        keyring.lookup_hash("basic\0b\0password-a"),
        uuid.UUID(second["id"]),
    )
    for password in ("password-a", "password-b"):
        reply = await bed.call("GET", "/messaging-api/v1/conversations", auth=basic("b", password))
        assert reply.status == 401
    sealed = json.loads(
        await conn.fetchval("SELECT sealed FROM credential WHERE id = $1", uuid.UUID(second["id"]))
    )
    with pytest.raises(DecryptionError):
        keyring.open(uuid.UUID(second["id"]), "secret", sealed["secret"])
    # Under another field name of the same row it does not open either.
    with pytest.raises(DecryptionError):
        keyring.open(uuid.UUID(first["id"]), "session", sealed["secret"])
    assert keyring.open(uuid.UUID(first["id"]), "secret", sealed["secret"]) == "password-a"


async def test_key_rotation_with_reads_before_and_after(bed: Bed, conn: asyncpg.Connection) -> None:
    owner = await bed.person()
    made = await _create_all(bed, owner)
    _, api_key = await bed.api_key(owner, name="key")
    key_file = bed.config.credentials.key_file
    assert key_file is not None
    old_kid = parse_keys(key_file.read_text(), "file")[-1][0]

    async def reads() -> None:
        assert (
            await bed.call("GET", "/messaging-api/v1/conversations", auth=f"Bearer {api_key}")
        ).status == 200
        assert (
            await bed.call(
                "GET", "/messaging-api/v1/conversations", auth=basic("svc", "S3cr3t-basic")
            )
        ).status == 200
        keyring = bed.credentials.keys.get()
        assert keyring is not None
        for name, config in SECRETS.items():
            row = await conn.fetchrow("SELECT id, sealed FROM credential WHERE name = $1", name)
            opened = keyring.open_all(row["id"], json.loads(row["sealed"]))
            for field, value in config.items():
                if field in opened:
                    assert opened[field] == (
                        value if isinstance(value, str) else '{"k":"S3cr3t-extra"}'
                    )

    await reads()
    new_kid = add_key(key_file)
    assert (key_file.stat().st_mode & 0o777) == 0o600
    # The running bridge reads the new key: old rows still open, new writes use the new key.
    await reads()
    await bed.create(owner, {"type": "secret", "secret": "fresh"}, name="fresh")
    assert await conn.fetchval("SELECT key_id FROM credential WHERE name = 'fresh'") == new_kid
    keyring = bed.credentials.keys.get()
    assert keyring is not None and keyring.newest_kid == new_kid
    moved = await rotate_key(bed.db, bed.credentials.service.store, keyring, batch=2)
    assert moved == len(made) + 1  # every credential but the fresh one
    assert set(await conn.fetchval("SELECT array_agg(DISTINCT key_id) FROM credential")) == {
        new_kid
    }
    await reads()
    # Without the old key now, everything still opens.
    lines = [
        line for line in key_file.read_text().splitlines() if not line.startswith(f"{old_kid}:")
    ]
    key_file.write_text("\n".join(lines) + "\n")
    await reads()
    assert await rotate_key(bed.db, bed.credentials.service.store, keyring) == 0


async def test_secrets_never_reach_the_logs(bed: Bed, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    owner = await bed.person()
    made = await _create_all(bed, owner)
    _, key = await bed.api_key(owner, name="key")
    client = await bed.create(owner, {"type": "oauth_client", "client_id": "c2"}, name="c2")
    client_secret = client["config"]["client_secret"]
    await bed.call("GET", "/messaging-api/v1/conversations", auth=f"Bearer {key}")
    await bed.call("GET", "/messaging-api/v1/conversations", params={"access_token": key})
    await bed.call("GET", "/messaging-api/v1/conversations", auth=basic("svc", "S3cr3t-basic"))
    await bed.call("GET", "/messaging-api/v1/conversations", auth=basic("svc", "S3cr3t-wrong"))
    token = await bed.call(
        "POST",
        "/auth-api/token",
        data={"grant_type": "client_credentials"},
        auth=basic("c2", client_secret),
    )
    await bed.call(
        "POST",
        "/auth-api/token",
        data={"grant_type": "client_credentials"},
        auth=basic("c2", client_secret + "x"),
    )
    await bed.call(
        "PATCH",
        f"{BASE}/{owner}/{made['token']['id']}",
        owner,
        json=[{"op": "replace", "path": "/config/secret", "value": "S3cr3t-token-0123456789"}],
    )
    await bed.call(
        "PATCH",
        f"{BASE}/{owner}/{made['token']['id']}",
        owner,
        json=[{"op": "replace", "path": "/config/secret", "value": "short"}],
    )
    await bed.call(
        "POST",
        f"{BASE}/{owner}",
        owner,
        json={"config": {"type": "token", "secret": "S3cr3t-token-0123456789"}},
    )
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "Credential" in logged  # the log was captured
    for needle in (*NEEDLES, key, client_secret, token.body["access_token"], "S3cr3t-wrong"):
        assert needle not in logged, needle


def test_key_parsing_and_files(tmp_path: Path) -> None:
    line = new_key_line("k1")
    assert parse_keys(f"# comment\n{line}\n", "f")[0][0] == "k1"
    for bad, fragment in (
        ("", "no key"),
        ("k1", "<key id>:<base64 key>"),
        ("k1:!!!", "base64"),
        ("k1:" + "A" * 10, "32 bytes"),
        (f"{line}\n{line}", "twice"),
    ):
        with pytest.raises(ValueError, match=fragment):
            parse_keys(bad, "f")
    path = tmp_path / "credentials.key"
    assert create_key_file(path) and not create_key_file(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    keyring = Keyring(parse_keys(path.read_text(), "f"))
    credential_id = uuid.uuid4()
    sealed = keyring.seal(credential_id, "secret", "value")
    assert "value" not in sealed and keyring.open(credential_id, "secret", sealed) == "value"
    assert keyring.seal(credential_id, "secret", "value") != sealed  # fresh nonce
    with pytest.raises(DecryptionError, match="not configured"):
        Keyring(parse_keys(new_key_line("other"), "f")).open(credential_id, "secret", sealed)


def test_key_source_env_and_bad_files(tmp_path: Path) -> None:
    from bridge.config import CredentialsConfig

    env_line = new_key_line("env1")
    source = KeySource(
        CredentialsConfig(key_file=tmp_path / "none"), {"BRIDGE_CREDENTIALS_KEYS": env_line}
    )
    keyring = source.get()
    assert source.from_env and keyring is not None and keyring.newest_kid == "env1"
    assert KeySource(CredentialsConfig(key_file=tmp_path / "none"), {}).get() is None
    bad = tmp_path / "bad.key"
    bad.write_text("nonsense\n")
    with pytest.raises(ConfigError, match=r"credentials\.key_file"):
        KeySource(CredentialsConfig(key_file=bad), {})
    with pytest.raises(ConfigError, match=r"credentials\.key_env"):
        KeySource(CredentialsConfig(), {"BRIDGE_CREDENTIALS_KEYS": "x"})
    # A file that turns bad keeps the last good keys.
    good = tmp_path / "good.key"
    create_key_file(good)
    source = KeySource(CredentialsConfig(key_file=good), {})
    kid = source.get().newest_kid  # type: ignore[union-attr]
    good.write_text("garbage that is longer\n")
    os.utime(good, ns=(1, 1))
    assert source.get().newest_kid == kid  # type: ignore[union-attr]
