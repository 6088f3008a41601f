"""The TLS listener as ``bridge run`` starts it (``api.tls``), its configuration errors, and
administrators by account (``credentials.admin_accounts``) authenticating by certificate."""

from __future__ import annotations

import socket
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.api import ApiServices, mount_api
from bridge.api.app import build_context
from bridge.config import ConfigError, parse_config
from bridge.db.database import Database
from bridge.own_key import create_private_key_file
from bridge.serving import start_tls_listener
from tests.api.conftest import SECRET, TOKEN_NAME, hs_token
from tests.api.symphony_bed import AUTHENTICATE, CERTS, CREATE, pod_config
from tests.api.x509_kit import issue
from tests.conftest import config_data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unusable_tls_certificate_is_a_config_error(
    tmp_path: Path, services: ApiServices
) -> None:
    config = pod_config(tmp_path, issue("127.0.0.1", ip="127.0.0.1"))
    (tmp_path / "server.pem").write_text("not a certificate")
    with pytest.raises(ConfigError) as err:
        build_context(config, Database("postgres://unused/unused"), services)
    assert err.value.key == "api.tls.certificate"


async def test_the_bridge_listens_over_tls_for_certificates(
    db: Database, services: ApiServices, tmp_path: Path
) -> None:
    admin = uuid.uuid4()
    async with db.transaction() as conn:
        await services.users.ensure(conn, admin, "Operator")
        number = (await services.users.get(conn, admin)).number
    server_ca = issue("Server CA", ca=True)
    cert, key = issue("127.0.0.1", server_ca, ip="127.0.0.1").files(tmp_path, "server")
    signing = tmp_path / "signing.pem"
    create_private_key_file(signing)
    port = _free_port()
    config = parse_config(
        config_data(
            api={
                "token_name": TOKEN_NAME,
                "jwt": {"algorithm": "HS256", "secret": SECRET, "private_key_file": str(signing)},
                "tls": {"certificate": str(cert), "key": str(key), "port": port},
            },
            credentials={"admin_accounts": [str(admin)]},
        )
    )
    bot_ca = issue("Operators CA", ca=True)
    app = web.Application()
    mount_api(app, config, db, services)
    runner = web.AppRunner(app)
    await runner.setup()
    refresh = await start_tls_listener(runner, app, config)
    assert refresh is not None
    base = f"https://127.0.0.1:{port}"
    try:
        trust = ssl.create_default_context(cadata=server_ca.pem)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as plain:
            body: Any = {
                "pem": bot_ca.pem,
                "attributes": {"type": {"type": "USERSIGNING"}, "status": {"type": "TRUSTED"}},
            }
            headers = {"sessionToken": hs_token(admin, roles=["admin"])}
            async with plain.post(f"{base}{CREATE}", json=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
        with_cert = ssl.create_default_context(cadata=server_ca.pem)
        leaf_cert, leaf_key = issue(str(number), bot_ca).files(tmp_path, "operator")
        with_cert.load_cert_chain(leaf_cert, leaf_key)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=with_cert)) as bot:
            async with bot.post(f"{base}{AUTHENTICATE}") as resp:
                assert resp.status == 200, await resp.text()
                token = (await resp.json())["token"]
            # The account is an administrator: its session may manage certificates.
            headers = {"sessionToken": token}
            async with bot.get(f"{base}{CERTS}/list", headers=headers) as resp:
                listed = await resp.json()
                assert resp.status == 200, listed
            assert [c["companyCertInfo"]["fingerPrint"] for c in listed] == [bot_ca.fingerprint]
    finally:
        refresh.cancel()
        await runner.cleanup()
