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
        ({"bridge__permissions": {"not a server": "user"}}, "bridge.permissions.not a server", "MXID"),
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
        ({"api__tls": {"certificate": "c", "key": "k", "port": 1, "session_ttl": 0}}, "api.tls.session_ttl", "positive"),
        ({"appservice__database_pool_max": 1, "appservice__database_pool_min": 3}, "appservice.database_pool_max", ">="),
        ({"appservice__database_pool_max": 7}, "appservice.database_pool_max", "inbox.workers + outbox.workers + 2 = 8"),
        ({"appservice__outbox": {"max_retry_delay": 0}}, "appservice.outbox.max_retry_delay", "positive"),
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
        config_data(bridge__permissions={"*": "block", "example.org": "user", "@boss:example.org": "admin"})
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
