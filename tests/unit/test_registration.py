"""generate-registration: tokens written back without losing comments; Synapse accepts the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bridge.cli import main
from bridge.config import load_config
from bridge.registration import set_appservice_tokens

ROOT = Path(__file__).resolve().parents[2]


def test_generate_fills_tokens_and_keeps_comments(config_path: Path, tmp_path: Path) -> None:
    before = config_path.read_text()
    registration = tmp_path / "registration.yaml"
    assert main(["generate-registration", "-c", str(config_path), "-r", str(registration)]) == 0
    after = config_path.read_text()
    comments = [line for line in before.splitlines() if line.strip().startswith("#")]
    assert comments == [line for line in after.splitlines() if line.strip().startswith("#")]
    assert len(before.splitlines()) == len(after.splitlines())
    config = load_config(config_path, environ={})
    assert config.tokens_generated()
    assert config.appservice.as_token != config.appservice.hs_token
    reg = yaml.safe_load(registration.read_text())
    assert reg["as_token"] == config.appservice.as_token
    assert reg["hs_token"] == config.appservice.hs_token
    assert registration.stat().st_mode & 0o077 == 0  # secrets: owner only
    assert config_path.stat().st_mode & 0o077 == 0


def test_generate_is_idempotent(config_path: Path, tmp_path: Path) -> None:
    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    first = yaml.safe_load(registration.read_text())
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    assert yaml.safe_load(registration.read_text()) == first


def test_registration_contents(config_path: Path, tmp_path: Path) -> None:
    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    reg = yaml.safe_load(registration.read_text())
    assert reg["id"] == "pn-bridge"
    assert reg["url"] == "http://127.0.0.1:29400"
    assert reg["sender_localpart"] == "_pn_bot"
    assert reg["rate_limited"] is False
    assert reg["receive_ephemeral"] is True
    users = reg["namespaces"]["users"]
    aliases = reg["namespaces"]["aliases"]
    assert all(ns["exclusive"] for ns in users + aliases)
    assert all(ns["regex"].endswith("$") for ns in users + aliases)
    user_re = re.compile(users[0]["regex"])
    assert user_re.match("@_pn_0b6f7a1e-1234-4cde-8f00-123456789abc:localhost")
    assert user_re.match("@_pn_bot:localhost")
    assert not user_re.match("@_pn_x:localhostevil.com")
    assert not user_re.match("@_pn_x:localhost.evil")
    assert not user_re.match("@alice:localhost")
    alias_re = re.compile(aliases[0]["regex"])
    assert alias_re.match("#_pn_conv_abc:localhost")
    assert not alias_re.match("#_pn_conv_abc:localhostXcom")


def test_dots_in_domain_are_escaped(config_path: Path, tmp_path: Path) -> None:
    text = config_path.read_text().replace("domain: localhost", "domain: example.org")
    config_path.write_text(text)
    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    regex = yaml.safe_load(registration.read_text())["namespaces"]["users"][0]["regex"]
    assert regex == r"@_pn_.+:example\.org$"
    assert not re.match(regex, "@_pn_x:exampleXorg")


def test_ephemeral_off_leaves_it_out(config_path: Path, tmp_path: Path) -> None:
    config_path.write_text(config_path.read_text().replace("ephemeral_events: true", "ephemeral_events: false"))
    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    reg = yaml.safe_load(registration.read_text())
    assert "receive_ephemeral" not in reg


def test_set_tokens_adds_missing_keys_under_appservice() -> None:
    text = "homeserver:\n  domain: x\nappservice:\n    id: a  # the id\n    port: 1\nbridge: {}\n"
    out = set_appservice_tokens(text, {"as_token": "A", "id": "b"})
    assert yaml.safe_load(out)["appservice"] == {"id": "b", "port": 1, "as_token": "A"}
    assert "# the id" in out


def test_synapse_accepts_the_registration(config_path: Path, tmp_path: Path) -> None:
    """Synapse's own loader parses and validates the generated file."""
    from synapse.config.appservice import load_appservices

    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    (service,) = load_appservices("localhost", [str(registration)])
    assert service.id == "pn-bridge"
    assert service.sender.to_string() == "@_pn_bot:localhost"
    assert service.is_interested_in_user("@_pn_anyone:localhost")
    assert not service.is_interested_in_user("@alice:localhost")
    assert service.is_room_alias_in_namespace("#_pn_conv_1:localhost")
    assert service.supports_ephemeral
    assert service.is_rate_limited() is False


def test_cli_reports_config_errors_with_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text((ROOT / "config.example.yaml").read_text().replace("port: 29400", "port: nope"))
    assert main(["check-config", "-c", str(path)]) == 2
    assert "config: appservice.port: must be int" in capsys.readouterr().err
    assert main(["-c", str(ROOT / "config.example.yaml"), "check-config"]) == 2
    assert "appservice.as_token" in capsys.readouterr().err
