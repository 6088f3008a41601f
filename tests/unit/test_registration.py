"""generate-registration: tokens written back without losing comments; Synapse accepts the file."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import re2
import rurex
import yaml

from bridge.cli import main
from bridge.config import load_config
from bridge.registration import portable_escape, set_appservice_tokens

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


#: The engines homeservers read namespaces with: Python's re (Synapse), RE2 (Dendrite is Go,
#: whose regexp is RE2's syntax) and Rust's regex crate (Conduit, conduwuit). Synapse calls
#: ``match``, Dendrite an unanchored search, the Rust ones ``is_match`` (a search too).
ENGINES: list[tuple[str, Callable[[str], Callable[[str], object]]]] = [
    ("python re.match", lambda regex: re.compile(regex).match),
    ("RE2 search", lambda regex: re2.compile(regex).search),
    ("Rust regex search", lambda regex: rurex.compile(regex).search),
]


def matches(regex: str, text: str) -> set[bool]:
    """Whether each engine finds ``regex`` in ``text``: one answer when they all agree."""
    return {bool(compile_(regex)(text)) for _, compile_ in ENGINES}


def assert_portable(regex: str) -> None:
    """Only syntax every engine reads alike: anchored both ends, no Python-only escapes, no
    groups with options or lookaround (RE2 and Rust have none)."""
    assert regex.startswith("^") and regex.endswith("$"), regex
    assert not re.search(r"\\[AZz]|\(\?", regex), regex
    for _, compile_ in ENGINES:
        compile_(regex)  # raises if the engine refuses the syntax


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
    for ns in users + aliases:
        assert_portable(ns["regex"])
    user_regex = users[0]["regex"]
    assert matches(user_regex, "@_pn_0b6f7a1e-1234-4cde-8f00-123456789abc:localhost") == {True}
    assert matches(user_regex, "@_pn_bot:localhost") == {True}
    for outside in (
        "@_pn_x:localhostevil.com",
        "@_pn_x:localhost.evil",
        "@alice:localhost",
        "@alice:evil.org@_pn_x:localhost",
        "@_pn_:localhost",
    ):
        assert matches(user_regex, outside) == {False}, outside
    alias_regex = aliases[0]["regex"]
    assert matches(alias_regex, "#_pn_conv_abc:localhost") == {True}
    assert matches(alias_regex, "#_pn_conv_abc:localhostXcom") == {False}
    # An id with a newline in it is no Matrix id; RE2 and Rust refuse one ending in a newline
    # and Python's "$" does not (the bridge itself matches ids with fullmatch).
    assert not re.fullmatch(user_regex, "@_pn_x:localhost\n")
    assert not re2.compile(user_regex).search("@_pn_x:localhost\n")
    assert not rurex.compile(user_regex).search("@_pn_x:localhost\n")
    assert matches(user_regex, "@_pn_a\nb:localhost") == {False}


def test_dots_in_domain_are_escaped(config_path: Path, tmp_path: Path) -> None:
    text = config_path.read_text().replace("domain: localhost", "domain: example.org")
    config_path.write_text(text)
    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    regex = yaml.safe_load(registration.read_text())["namespaces"]["users"][0]["regex"]
    assert regex == r"^@_pn_.+:example\.org$"
    assert matches(regex, "@_pn_x:exampleXorg") == {False}


@pytest.mark.parametrize("text", ["[::1]:8448", "a-b.example", "x+y*z?(w)|v{2}^$\\", "_pn_#&~ é"])
def test_escaped_text_stands_for_itself_in_every_engine(text: str) -> None:
    regex = f"^{portable_escape(text)}$"
    assert matches(regex, text) == {True}
    assert matches(regex, text + "x") == {False} and matches(regex, "x" + text) == {False}


def test_ephemeral_off_leaves_it_out(config_path: Path, tmp_path: Path) -> None:
    config_path.write_text(
        config_path.read_text().replace("ephemeral_events: true", "ephemeral_events: false")
    )
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
    assert not service.is_interested_in_user("@_pn_anyone:localhost.evil")
    assert service.is_room_alias_in_namespace("#_pn_conv_1:localhost")
    assert not service.is_room_alias_in_namespace("#_pn_conv_1:localhostXcom")
    # Python's "$" lets "...:localhost\n" in too: a namespace a little wider, over ids no
    # homeserver lets anyone register (a newline is no character of a Matrix id).
    assert service.supports_ephemeral
    assert service.is_rate_limited() is False


def test_cli_reports_config_errors_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text((ROOT / "config.example.yaml").read_text().replace("port: 29400", "port: nope"))
    assert main(["check-config", "-c", str(path)]) == 2
    assert "config: appservice.port: must be int" in capsys.readouterr().err
    assert main(["-c", str(ROOT / "config.example.yaml"), "check-config"]) == 2
    assert "appservice.as_token" in capsys.readouterr().err


def test_bot_outside_the_user_namespace_is_matched_to_the_end(
    config_path: Path, tmp_path: Path
) -> None:
    config_path.write_text(
        config_path.read_text().replace("bot_username: _pn_bot", "bot_username: pnbot")
    )
    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    from synapse.config.appservice import load_appservices

    (service,) = load_appservices("localhost", [str(registration)])
    assert service.is_interested_in_user("@pnbot:localhost")
    assert not service.is_interested_in_user("@pnbot:localhost.evil")
    assert not service.is_interested_in_user("@pnbot2:localhost")
    bot_regex = yaml.safe_load(registration.read_text())["namespaces"]["users"][1]["regex"]
    assert_portable(bot_regex)
    assert matches(bot_regex, "@pnbot:localhost") == {True}
    assert matches(bot_regex, "@xpnbot:localhost") == {False}


def test_token_files_are_never_readable_by_others(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created owner-only (not chmod-ed after writing): even a permissive umask shows nothing."""
    import os

    created: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created.append((os.fspath(path), mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    old_umask = os.umask(0)
    try:
        registration = tmp_path / "registration.yaml"
        assert main(["generate-registration", "-c", str(config_path), "-r", str(registration)]) == 0
    finally:
        os.umask(old_umask)
    assert created, "the files are created through os.open with a mode"
    assert all(mode == 0o600 for _, mode in created)
    # The config has no REST key material, so the bridge's own signing key is made too.
    assert {Path(p).name for p, _ in created} == {
        ".config.yaml.tmp",
        ".registration.yaml.tmp",
        "jwt-signing-key.pem",
        "credentials.key",  # and the key that encrypts credential secrets
    }
    for path in (config_path, registration):
        assert path.stat().st_mode & 0o777 == 0o600


def test_existing_readable_files_are_tightened_and_said_so(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registration = tmp_path / "registration.yaml"
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    capsys.readouterr()
    config_path.chmod(0o644)  # tokens already there: the file is not rewritten this time
    registration.chmod(0o640)
    assert main(["generate-registration", "-c", str(config_path), "-r", str(registration)]) == 0
    out = capsys.readouterr().out
    assert f"{config_path} could be read by group or others (mode 644)" in out
    assert f"{registration} could be read by group or others (mode 640)" in out
    assert config_path.stat().st_mode & 0o777 == 0o600
    assert registration.stat().st_mode & 0o777 == 0o600
    main(["generate-registration", "-c", str(config_path), "-r", str(registration)])
    assert "could be read" not in capsys.readouterr().out
