"""Config keys of the operator features: metrics, admin, transaction gaps."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, parse_config
from tests.conftest import config_data


def test_defaults() -> None:
    config = parse_config(config_data())
    assert (config.metrics.enabled, config.metrics.host, config.metrics.port) == (
        False,
        "127.0.0.1",
        9464,
    )
    gaps = config.appservice.transaction_gaps
    assert (gaps.enabled, gaps.grace, gaps.check_interval) == (True, 60.0, 5.0)
    assert config.admin.enabled and config.admin.link_ttl == 600


def test_metrics_listen_takes_host_and_port() -> None:
    config = parse_config(config_data(metrics={"enabled": True, "listen": "[::1]:9100"}))
    assert (config.metrics.host, config.metrics.port) == ("::1", 9100)


@pytest.mark.parametrize("listen", ["9100", "localhost:", ":9100", "host:99999", "host:x"])
def test_metrics_listen_must_be_host_port(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen: must be host:port"):
        parse_config(config_data(metrics={"listen": listen}))


def test_gap_grace_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"appservice\.transaction_gaps\.grace: must be positive"):
        parse_config(config_data(appservice__transaction_gaps={"grace": 0}))
