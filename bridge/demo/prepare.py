"""The demo's configuration, written on its first run: the bridge's and the homeserver's."""

from __future__ import annotations

import yaml

from ..config import Config
from ..local.synapse import homeserver_config, write_config
from ..registration import generate
from .layout import DemoLayout

SERVER_NAME = "localhost"
APPSERVICE_ID = "pn-demo"
BOT_LOCALPART = "_pn_bot"

_HEADER = """\
# The bridge's config for `bridge demo`, written by it on its first run; config.example.yaml
# describes every key. Every `bridge` command takes it, for example:
#   bridge mint-token -c {config} --sub <network user id>
#   bridge users list -c {config}    (while the demo is stopped)
# `bridge demo --reset` deletes it with the rest of the demo.
"""


def bridge_settings(*, bridge_port: int, homeserver_port: int) -> dict[str, object]:
    """The bridge's config as the demo runs it: loopback only, its own PostgreSQL."""
    return {
        "homeserver": {"address": f"http://127.0.0.1:{homeserver_port}", "domain": SERVER_NAME},
        "appservice": {
            "address": f"http://127.0.0.1:{bridge_port}",
            "hostname": "127.0.0.1",
            "port": bridge_port,
            "id": APPSERVICE_ID,
            "bot_username": BOT_LOCALPART,
            "bot_displayname": "Network bridge bot",
            "as_token": "generate",
            "hs_token": "generate",
            "database": "embedded",
            "embedded_data_dir": "data/postgres",
        },
        "bridge": {"permissions": {"*": "block", SERVER_NAME: "user"}},
        "logging": {"level": "INFO", "format": "text"},
    }


def write_bridge_config(layout: DemoLayout, *, bridge_port: int, homeserver_port: int) -> Config:
    """Write the bridge's config, then let ``generate-registration`` fill in its tokens and the
    REST API's signing key and write the registration file."""
    layout.root.mkdir(parents=True, exist_ok=True)
    settings = bridge_settings(bridge_port=bridge_port, homeserver_port=homeserver_port)
    text = _HEADER.format(config=layout.config) + yaml.safe_dump(settings, sort_keys=False)
    layout.config.write_text(text, encoding="utf-8")
    layout.config.chmod(0o600)
    return generate(layout.config, layout.registration).config


def write_homeserver_config(layout: DemoLayout, *, homeserver_port: int) -> None:
    """Write Synapse's config (SQLite, loopback, relaxed limits, the bridge registered)."""
    files = layout.synapse
    write_config(
        files,
        homeserver_config(
            files,
            server_name=SERVER_NAME,
            port=homeserver_port,
            app_service_config_files=[layout.registration.resolve()],
        ),
    )
