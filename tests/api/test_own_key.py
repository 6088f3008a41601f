"""``generate-registration`` gives the REST API the bridge's own signing key when the config
has nothing to verify tokens with, and leaves a config that has something alone."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from bridge.api import ApiServices
from bridge.api.auth import TokenVerifier
from bridge.api.keys import SigningKey
from bridge.cli import main
from bridge.config import ConfigError, load_config
from bridge.db.database import Database
from bridge.own_key import KEY_FILE_NAME, create_private_key_file
from bridge.yaml_edit import set_scalars
from tests.api.conftest import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_umask() -> Iterator[None]:
    """A umask that would leave a carelessly created file readable by everyone."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def generate(config_path: Path) -> None:
    registration = config_path.with_name("registration.yaml")
    assert main(["generate-registration", "-c", str(config_path), "-r", str(registration)]) == 0


def mint(config_path: Path, capsys: pytest.CaptureFixture[str], sub: uuid.UUID) -> str:
    capsys.readouterr()
    assert main(["mint-token", "-c", str(config_path), "--sub", str(sub), "--name", "Ann"]) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.usefixtures("no_umask")
def test_creates_the_key_owner_only_and_names_it_in_the_config_keeping_comments(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = config_path.read_text()
    generate(config_path)
    key_file = config_path.parent / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "bridge's own RS256 key" in capsys.readouterr().out
    after = config_path.read_text()
    assert len(after.splitlines()) == len(before.splitlines())
    comments = [line for line in before.splitlines() if line.strip().startswith("#")]
    assert comments == [line for line in after.splitlines() if line.strip().startswith("#")]
    raw = yaml.safe_load(after)["api"]["jwt"]
    assert raw["algorithm"] == "RS256" and raw["private_key_file"] == f"data/{KEY_FILE_NAME}"
    config = load_config(config_path, environ={})
    assert config.api.jwt.private_key_file == key_file
    # Everything else of the example's api.jwt is as it was.
    assert raw["secret"] is None and raw["leeway"] == 30


def test_mint_token_works_right_after_and_the_bridge_verifies_it(
    config_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    generate(config_path)
    sub = uuid.uuid4()
    token = mint(config_path, capsys, sub)
    config = load_config(config_path, environ={})
    assert config.api.jwt.private_key_file is not None
    own = SigningKey(config.api.jwt.private_key_file).current()
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": own.kid, "typ": "JWT"}
    verifier = TokenVerifier(config.api.jwt, SigningKey(config.api.jwt.private_key_file))
    assert verifier.verify(token)["sub"] == str(sub)
    assert "refuse every token" not in caplog.text


async def test_publickey_serves_the_generated_key_under_the_tokens_kid(
    config_path: Path,
    capsys: pytest.CaptureFixture[str],
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
) -> None:
    generate(config_path)
    token = mint(config_path, capsys, uuid.uuid4())
    config = load_config(config_path, environ={})
    client = await serve(aiohttp_client, config, db, services)
    resp = await client.get("/auth-api/publickey")
    assert resp.status == 200
    body = await resp.json()
    assert body["keyId"] == jwt.get_unverified_header(token)["kid"]
    assert jwt.decode(token, body["keyData"], algorithms=["RS256"])["name"] == "Ann"
    # A later run keeps the key: same kid, tokens minted before still verify.
    generate(config_path)
    resp = await client.get("/auth-api/publickey")
    assert (await resp.json())["keyId"] == body["keyId"]


def test_second_run_changes_nothing(config_path: Path) -> None:
    generate(config_path)
    key_file = config_path.parent / "data" / KEY_FILE_NAME
    text, key = config_path.read_text(), key_file.read_bytes()
    generate(config_path)
    assert config_path.read_text() == text
    assert key_file.read_bytes() == key


@pytest.mark.parametrize(
    "jwt_lines",
    [
        ["algorithm: HS256", "secret: a-shared-secret-of-at-least-thirty-two-bytes"],
        ["algorithm: RS256", "public_key_file: their-key.pem"],
        ["algorithm: RS256", "jwks_file: keys.json"],
    ],
)
def test_a_configured_api_is_left_alone(config_path: Path, jwt_lines: list[str]) -> None:
    text = config_path.read_text()
    for line in jwt_lines:
        key = line.split(":", 1)[0]
        text = text.replace(f"    {key}:", f"    {line}  #", 1)
    text = text.replace("as_token: generate", "as_token: tok-a").replace(
        "hs_token: generate", "hs_token: tok-b"
    )
    config_path.write_text(text)
    (config_path.parent / "their-key.pem").write_text("")  # never read by generate
    generate(config_path)
    assert config_path.read_text() == text
    assert not (config_path.parent / "data" / KEY_FILE_NAME).exists()


def test_an_existing_key_file_is_adopted_not_overwritten(config_path: Path) -> None:
    key_file = config_path.parent / "data" / KEY_FILE_NAME
    assert create_private_key_file(key_file) is True
    key = key_file.read_bytes()
    generate(config_path)
    assert key_file.read_bytes() == key
    assert load_config(config_path, environ={}).api.jwt.private_key_file == key_file


def test_a_foreign_file_at_the_key_path_is_refused(config_path: Path) -> None:
    key_file = config_path.parent / "data" / KEY_FILE_NAME
    key_file.parent.mkdir()
    key_file.write_text("not a key")
    with pytest.raises(ConfigError, match="not an RSA private key"):
        create_private_key_file(key_file)
    assert key_file.read_text() == "not a key"


@pytest.mark.usefixtures("no_umask")
def test_a_named_key_file_that_is_missing_is_created(config_path: Path) -> None:
    text = config_path.read_text().replace("algorithm: HS256", "algorithm: RS256")
    text = text.replace("    private_key_file:", "    private_key_file: keys/mine.pem")
    config_path.write_text(text)
    generate(config_path)
    created = config_path.parent / "keys" / "mine.pem"
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    assert config_path.read_text() == text.replace(
        "as_token: generate", f"as_token: {load_config(config_path).appservice.as_token}"
    ).replace("hs_token: generate", f"hs_token: {load_config(config_path).appservice.hs_token}")


def test_set_scalars_adds_missing_sections_and_keeps_the_rest() -> None:
    text = "appservice:\n  id: a  # the id\n\n# trailing comment\n"
    out = set_scalars(text, ["api", "jwt"], {"algorithm": "RS256", "private_key_file": "k.pem"})
    assert yaml.safe_load(out) == {
        "appservice": {"id": "a"},
        "api": {"jwt": {"algorithm": "RS256", "private_key_file": "k.pem"}},
    }
    assert "# the id" in out and "# trailing comment" in out
    nested = "api:\n  enabled: true\n  jwt: ~  # tokens\nlogging:\n  level: INFO\n"
    out = set_scalars(nested, ["api", "jwt"], {"algorithm": "RS256"})
    assert yaml.safe_load(out) == {
        "api": {"enabled": True, "jwt": {"algorithm": "RS256"}},
        "logging": {"level": "INFO"},
    }
    assert "jwt:  # tokens" in out
    odd = set_scalars("api:\n  jwt:\n    secret:\n", ["api", "jwt"], {"secret": "a: b #c"})
    assert yaml.safe_load(odd)["api"]["jwt"]["secret"] == "a: b #c"
    with pytest.raises(ConfigError, match="api"):
        set_scalars("api: {}\n", ["api", "jwt"], {"algorithm": "RS256"})
