"""What the demo prints once ready: how to log in from Matrix and call the REST API."""

from __future__ import annotations

import shlex
from typing import Any

from ..config import Config
from .layout import DemoLayout
from .seed import Scene

#: Lifetime of the REST tokens printed (a new run prints new ones).
TOKEN_TTL = 24 * 3600


def admin_page_url(config: Config) -> str | None:
    """The link to the bridge's admin status page, printed by the demo once the bridge serves
    one; None while it does not."""
    del config
    return None


def build_report(
    config: Config,
    scene: Scene,
    layout: DemoLayout,
    tokens: dict[str, str],
    *,
    pids: dict[str, int | None],
    ready_seconds: float,
) -> dict[str, Any]:
    """The report as one JSON-ready object (``--json`` prints exactly this)."""
    return {
        "homeserver_url": config.homeserver.address,
        "matrix_user": scene.matrix_user,
        "matrix_password": scene.matrix_password,
        "network_users": [
            {"id": u["id"], "name": u["name"], "token": tokens[u["id"]]}
            for u in scene.network_users
        ],
        "rest_url": config.appservice.address,
        "bot": config.bot_mxid,
        "matrix_network_id": scene.matrix_network_id,
        "management_room": scene.management_room,
        "direct": scene.direct,
        "group": scene.group,
        "admin_url": admin_page_url(config),
        "token_ttl_seconds": TOKEN_TTL,
        "data_dir": str(layout.root.resolve()),
        "config": str(layout.config.resolve()),
        "logs": {
            "bridge": str(layout.bridge_log.resolve()),
            "synapse": str(layout.synapse_log.resolve()),
            "postgres": str(layout.postgres_log.resolve()),
        },
        "pids": pids,
        "ready_seconds": round(ready_seconds, 2),
    }


def render_text(report: dict[str, Any]) -> str:
    """The report for a person: what to open, what to paste."""
    rest = report["rest_url"]
    first = report["network_users"][0]
    direct = report["direct"]["conversation_id"]
    lines = [
        "",
        f"The demo is ready ({report['ready_seconds']:.1f} s). Ctrl-C stops it.",
        "",
        "Matrix: in any Matrix client (e.g. Element desktop), choose the homeserver",
        f"  {report['homeserver_url']}",
        f"and log in as {report['matrix_user'][1:].split(':', 1)[0]} ({report['matrix_user']}) "
        f"with the password {report['matrix_password']}",
        f"You will find a direct chat with {first['name']} (bridged: messages go both ways),",
        "the group conversation's room, and the management room with the bridge bot",
        f"({report['bot']}): send `help` there for its commands; notifications arrive there.",
        "",
        f"REST API ({rest}), as the network users (tokens valid "
        f"{report['token_ttl_seconds'] // 3600} h):",
    ]
    for user in report["network_users"]:
        variable = user["name"].split()[0].upper()
        lines.append(f"  {variable}={user['token']}  # {user['name']}, id {user['id']}")
    variable = first["name"].split()[0].upper()
    auth = f'-H "Authorization: Bearer ${variable}"'
    body = shlex.quote(f'{{"conversationId": "{direct}", "content": "Hello from curl"}}')
    lines += [
        "",
        f"List {first['name']}'s conversations:",
        f"  curl -s {auth} {rest}/messaging-api/v1/conversations",
        "Send a message that appears in Matrix:",
        f"  curl -s {auth} -H 'Content-Type: application/json' \\",
        f"    -d {body} {rest}/messaging-api/v1/messages",
        f"New tokens: bridge mint-token -c {report['config']} --sub <id> --name <name>",
        f"OpenAPI document: {rest}/openapi.json",
    ]
    if report["admin_url"]:
        lines.append(f"Admin status page: {report['admin_url']}")
    lines += [
        "",
        f"Logs: {report['logs']['bridge']}, {report['logs']['synapse']}, "
        f"{report['logs']['postgres']}",
        f"Run `bridge demo` again to resume; `bridge demo --reset` starts over "
        f"(data in {report['data_dir']}).",
    ]
    return "\n".join(lines)
