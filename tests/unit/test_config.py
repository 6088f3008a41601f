"""Config loading: types, required keys, placeholders, env overrides, all naming the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bridge.config import ConfigError, apply_env_overrides, load_config, parse_config
from tests.conftest import config_data

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads_but_refuses_placeholder_tokens() -> None:
    config = load_config(ROOT / "config.example.yaml", environ={})
    assert config.homeserver.domain == "localhost"
    assert config.appservice.uses_embedded_database
    assert config.appservice.embedded_data_dir == ROOT / "data" / "postgres"
    assert config.bot_mxid == "@_pn_bot:localhost"
    assert not config.tokens_generated()
    with pytest.raises(ConfigError) as err:
        config.require_tokens()
    assert err.value.key == "appservice.as_token"


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        ({"appservice__port": "29400"}, "appservice.port", "must be int"),
        ({"appservice__port": 70000}, "appservice.port", "between 1 and 65535"),
        ({"appservice__port": True}, "appservice.port", "integer"),
        ({"appservice__address": "ftp://x"}, "appservice.address", "http(s) URL"),
        ({"appservice__database": "mysql://x"}, "appservice.database", "embedded"),
        ({"homeserver__domain": "bad domain"}, "homeserver.domain", "server name"),
        ({"homeserver__address": None}, "homeserver.address", "required"),
        ({"bridge__username_template": "_pn_"}, "bridge.username_template", "{userid}"),
        ({"bridge__username_template": "_PN_{userid}"}, "bridge.username_template", "a-z"),
        ({"bridge__permissions": {"localhost": "god"}}, "bridge.permissions.localhost", "level"),
        (
            {"bridge__permissions": {"not a server": "user"}},
            "bridge.permissions.not a server",
            "MXID",
        ),
        ({"appservice__inbox__workers": 0}, "appservice.inbox.workers", "positive"),
        ({"appservice__inbox__retry_delay": "soon"}, "appservice.inbox.retry_delay", "float"),
        ({"appservice__inbox__max_backlog": -1}, "appservice.inbox.max_backlog", "0 (no limit)"),
        ({"appservice__inbox__max_hold": 0}, "appservice.inbox.max_hold", "more than 0"),
        ({"appservice__inbox__keep_days": -1}, "appservice.inbox.keep_days", "keep forever"),
        ({"appservice__inbox__max_hold": 60}, "appservice.inbox.max_hold", "homeserver waits 60 s"),
        ({"api__jwt__algorithm": "none"}, "api.jwt.algorithm", "HS256 or RS256"),
        ({"logging__level": "LOUD"}, "logging.level", "DEBUG"),
        ({"api__tls": {"port": 8443}}, "api.tls.certificate", "required"),
        ({"api__tls": {"certificate": "c.pem", "key": "k.pem"}}, "api.tls.port", "required"),
        ({"api__tls": {"certificate": "c", "key": "k", "port": 70000}}, "api.tls.port", "TCP port"),
        ({"api__tls": {"certificate": "c", "port": 8443}}, "api.tls.key", "required"),
        (
            {"api__tls": {"certificate": "c", "key": "k", "port": 1, "session_ttl": 0}},
            "api.tls.session_ttl",
            "positive",
        ),
        (
            {"appservice__database_pool_max": 1, "appservice__database_pool_min": 3},
            "appservice.database_pool_max",
            ">=",
        ),
        (
            {"appservice__database_pool_max": 7},
            "appservice.database_pool_max",
            "inbox.workers + outbox.workers + 2 = 8",
        ),
        (
            {"appservice__outbox": {"max_retry_delay": 0}},
            "appservice.outbox.max_retry_delay",
            "positive",
        ),
        ({"appservice__role": "both"}, "appservice.role", "all, intake, worker"),
        ({"appservice__reuse_port": "yes please"}, "appservice.reuse_port", "bool"),
        ({"appservice__listen_notify": 1}, "appservice.listen_notify", "bool"),
        (
            {"appservice__outbox": {"lease_seconds": 30, "request_timeout": 30}},
            "appservice.outbox.lease_seconds",
            "more than request_timeout",
        ),
        (
            {
                "appservice__role": "intake",
                "appservice__database_pool_max": 1,
                "appservice__database_pool_min": 1,
            },
            "appservice.database_pool_max",
            "at least 2",
        ),
        ({"appservice__outbox": "fast"}, "appservice.outbox", "must be a mapping"),
        ({"appservice__bot_avatar": "https://x/a.png"}, "appservice.bot_avatar", "mxc://"),
        ({"appservice__bot_displayname": 7}, "appservice.bot_displayname", "must be str, got int"),
        ({"api__jwt__public_key_file": 7}, "api.jwt.public_key_file", "must be str, got int"),
        (
            {"bridge__permissions": {"localhost": None}},
            "bridge.permissions",
            "must be str, got null",
        ),
        ({"api__token_name": "a b"}, "api.token_name", "header/cookie"),
        ({"logging__format": "xml"}, "logging.format", "text or json"),
    ],
)
def test_bad_values_name_the_dotted_key(override: dict, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_data(**override))
    assert err.value.key == key
    assert problem in str(err.value)
    assert str(err.value).startswith(f"config: {key}: ")


def test_missing_section_is_named() -> None:
    data = config_data()
    del data["appservice"]
    with pytest.raises(ConfigError, match="config: appservice: missing section"):
        parse_config(data)


def test_env_overrides_are_typed_and_nested() -> None:
    data = apply_env_overrides(
        config_data(),
        {
            "BRIDGE_APPSERVICE__PORT": "31000",
            "BRIDGE_APPSERVICE__INBOX__WORKERS": "7",
            "BRIDGE_HOMESERVER__VERIFY_SSL": "false",
            "BRIDGE_APPSERVICE__HS_TOKEN": "from-env",
            "OTHER_VAR": "ignored",
            "BRIDGE_NOLEVEL": "ignored",
        },
    )
    config = parse_config(data)
    assert config.appservice.port == 31000
    assert config.appservice.inbox.workers == 7
    assert config.homeserver.verify_ssl is False
    assert config.appservice.hs_token == "from-env"


def test_env_override_of_a_scalar_with_children_is_refused() -> None:
    with pytest.raises(ConfigError, match="non-mapping"):
        apply_env_overrides(config_data(), {"BRIDGE_APPSERVICE__PORT__X": "1"})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("homeserver: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(scalar)


def test_permission_levels_most_specific_wins() -> None:
    config = parse_config(
        config_data(
            bridge__permissions={"*": "block", "example.org": "user", "@boss:example.org": "admin"}
        )
    )
    assert config.permission_level("@boss:example.org") == "admin"
    assert config.permission_level("@ann:example.org") == "user"
    assert config.permission_level("@eve:evil.com") == "block"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    data = config_data(appservice__embedded_data_dir="pgdata")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, environ={})
    assert config.appservice.embedded_data_dir == tmp_path / "pgdata"


def test_roles_and_process_keys() -> None:
    defaults = parse_config(config_data()).appservice
    assert (defaults.role, defaults.reuse_port, defaults.listen_notify) == ("all", False, True)
    assert defaults.runs_intake and defaults.runs_workers
    intake = parse_config(
        config_data(appservice__role="intake", appservice__database_pool_max=2)
    ).appservice
    assert intake.runs_intake and not intake.runs_workers
    worker = parse_config(config_data(appservice__role="worker", appservice__reuse_port=True))
    assert worker.appservice.reuse_port and not worker.appservice.runs_intake
    assert worker.appservice.runs_workers
    assert worker.appservice.outbox.lease_seconds == 120.0


@pytest.mark.parametrize(
    ("jwt", "key", "problem"),
    [
        ({"secret": "x"}, "api.jwt.secret", "at least 32 bytes"),
        ({"secret": "a" * 31}, "api.jwt.secret", "at least 32 bytes"),
        ({"secret": "é" * 15 + "a"}, "api.jwt.secret", "at least 32 bytes"),  # 31 bytes in UTF-8
        ({"leeway": 301}, "api.jwt.leeway", "between 0 and 300"),
        ({"leeway": 10**9}, "api.jwt.leeway", "between 0 and 300"),
        ({"leeway": -1}, "api.jwt.leeway", "between 0 and 300"),
        ({"leeway": 1e9}, "api.jwt.leeway", "must be int"),
    ],
)
def test_weak_jwt_settings_are_refused(jwt: dict, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_data(api={"jwt": jwt}))
    assert err.value.key == key and problem in err.value.problem


def test_jwt_settings_at_the_limits_are_taken() -> None:
    config = parse_config(config_data(api={"jwt": {"secret": "a" * 32, "leeway": 300}}))
    assert (config.api.jwt.secret, config.api.jwt.leeway) == ("a" * 32, 300)
    # An RS256 setup ignores the (unused) secret's length.
    rs = parse_config(config_data(api={"jwt": {"algorithm": "RS256", "secret": "x"}}))
    assert rs.api.jwt.algorithm == "RS256"


def test_check_config_refuses_a_short_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main

    data = config_data(api={"jwt": {"secret": "x"}})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check-config", "-c", str(path)]) == 2
    assert "api.jwt.secret" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "key", "suggestion"),
    [
        ({"homeservr": {}}, "homeservr", "'homeserver'"),
        ({"homeserver__verify_tls": False}, "homeserver.verify_tls", "'homeserver.verify_ssl'"),
        ({"appservice__prot": 1}, "appservice.prot", "'appservice.port'"),
        ({"appservice__inbox__worker": 3}, "appservice.inbox.worker", "'appservice.inbox.workers'"),
        (
            {"appservice__outbox__retry_dely": 1},
            "appservice.outbox.retry_dely",
            "'appservice.outbox.retry_delay'",
        ),
        ({"bridge__permission": {}}, "bridge.permission", "'bridge.permissions'"),
        ({"api__enable": True}, "api.enable", "'api.enabled'"),
        ({"api__jwt__secrets": "x"}, "api.jwt.secrets", "'api.jwt.secret'"),
        ({"logging__levl": "INFO"}, "logging.levl", "'logging.level'"),
        ({"appservice__colour": "blue"}, "appservice.colour", None),
        ({"path": "/etc"}, "path", None),
    ],
)
def test_unknown_keys_are_refused_at_every_level(
    override: dict, key: str, suggestion: str | None
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_data(**override))
    assert err.value.key == key
    if suggestion is None:
        assert str(err.value) == f"config: {key}: unknown key"
    else:
        assert str(err.value) == f"config: {key}: unknown key; did you mean {suggestion}?"


def test_an_unknown_key_from_the_environment_is_refused_too() -> None:
    data = apply_env_overrides(config_data(), {"BRIDGE_APPSERVICE__INBOX__WORKRS": "3"})
    with pytest.raises(ConfigError, match=r"appservice.inbox.workrs: unknown key; did you mean"):
        parse_config(data)


def test_empty_keys_take_their_defaults() -> None:
    config = parse_config(
        config_data(
            appservice__inbox=None,
            appservice__hostname=None,
            api={"jwt": {"secret": None, "leeway": None}},
        )
    )
    assert config.appservice.inbox.workers == 4
    assert config.appservice.hostname == "127.0.0.1"
    assert config.api.jwt.secret is None and config.api.jwt.leeway == 30
    assert config.appservice.bot_displayname == "Network bridge bot"
    assert config.appservice.bot_avatar is None


def test_values_are_normalised() -> None:
    config = parse_config(
        config_data(
            homeserver__address="http://hs:8008/",
            logging__level="debug",
            appservice__bot_avatar="mxc://localhost/botface",
        )
    )
    assert config.homeserver.address == "http://hs:8008"
    assert config.logging.level == "DEBUG"
    assert config.appservice.bot_avatar == "mxc://localhost/botface"
    assert config.appservice.outbox.retry_delay == 2.0 and isinstance(
        config.appservice.inbox.keep_days, float
    )
