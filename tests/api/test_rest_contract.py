"""The contract test: schemathesis against the live REST API, every check, stateful links.

The bridge serves the API on a loopback port (aiohttp test server, the suite's Postgres) with
seeded users and data; schemathesis reads ``/openapi.json`` and sends what it generates, as a
network user with a valid token, and fails on any finding: a 5xx, a status or body the document
does not declare, valid data refused, invalid data accepted, a resource gone after its create.
The run is seeded and deterministic; ``CONTRACT_MAX_EXAMPLES`` makes a longer run (nightly).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.api import ApiServices
from bridge.config import parse_config
from bridge.db.database import Database
from bridge.own_key import create_private_key_file
from tests.api.conftest import SECRET, TOKEN_NAME, Api, hs_token, serve
from tests.conftest import config_data

SEED = 20261129
#: Examples per operation and phase; small enough for CI, each run the same.
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "8"))
#: A bound on the whole run, seconds: a hang fails the test instead of holding CI (the run
#: itself takes two to three minutes, more on a loaded machine).
TIMEOUT = 600


@pytest.fixture
async def api(aiohttp_client: Any, db: Database, services: ApiServices, tmp_path: Path) -> Api:
    """The API with HS256 tokens and the bridge's own signing key (the pod certificate and
    session tokens are made with it)."""
    key = tmp_path / "signing.pem"
    create_private_key_file(key)
    jwt = {"algorithm": "HS256", "secret": SECRET, "private_key_file": str(key)}
    config = parse_config(config_data(api={"token_name": TOKEN_NAME, "jwt": jwt}))
    return Api(await serve(aiohttp_client, config, db, services), db, services)


async def seed(api: Api, me: uuid.UUID) -> None:
    """Users and data for the generated requests to find: a conversation, messages, a
    connection, requests both ways, notifications and a device of the token's user."""
    bob, cat, dan, eve = [await api.person(n) for n in ("Bob", "Cat", "Dan", "Eve")]
    await api.call("GET", "/messaging-api/v1/conversations", me)  # creates the token's user
    for friend in (bob, cat):  # the conversation rules: only connections join a group
        await api.call(
            "POST",
            "/networking-api/v1/connections",
            me,
            admin=True,
            json={"userId1": str(me), "userId2": str(friend)},
        )
    status, body = await api.call(
        "POST",
        "/messaging-api/v1/conversations",
        me,
        json={"isGroup": True, "participantIds": [str(me), str(bob), str(cat)], "title": "Team"},
    )
    assert status == 201, body
    group = body["conversation"]["id"]
    for n in range(3):
        await api.call(
            "POST",
            "/messaging-api/v1/messages",
            me,
            json={"conversationId": group, "content": f"m{n}"},
        )
    await api.call(
        "POST", "/networking-api/v1/connectionrequests", me, json={"receiverUserId": str(dan)}
    )
    await api.call(
        "POST", "/networking-api/v1/connectionrequests", eve, json={"receiverUserId": str(me)}
    )
    await api.call(
        "POST",
        "/notification-api/notifications",
        me,
        admin=True,
        json={"notification": {"userIds": [str(me)], "title": "Welcome"}},
    )
    await api.call(
        "POST", "/notification-api/devices/register", me,
        json={"device": {"token": "device-1", "platform": "ios"}},
    )  # fmt: skip


async def test_the_api_keeps_its_documented_contract(api: Api, tmp_path: Path) -> None:
    me = uuid.uuid4()
    await seed(api, me)
    server = api.client.server
    base = f"http://{server.host}:{server.port}"
    token = hs_token(me)
    report = tmp_path / "report"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
        "--url", base,
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--header", f"Authorization: Bearer {token}",
        # /currentuser answers the caller's own token (accessToken, the seed's session shape).
        # Schemathesis keeps values it reads in responses and offers them to parameters of
        # like names, so that valid token would come back as a *generated* access_token (or
        # token header, or cookie) on any operation, and the "ignored auth" check, which takes
        # a generated credential for an invalid one, would report the API as accepting invalid
        # authentication. So no credential is generated: every request carries the run's own
        # token (the header above), and "ignored auth" still probes every operation with no
        # credential and with an invalid one in each place a token may be.
        "--generation-with-security-parameters", "false",
        "--seed", str(SEED),
        "--generation-deterministic",
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",
        "--no-color",
        "--output-truncate", "false",
        "--report-dir", str(report),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=os.environ | {"SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # its caches stay out of the checkout
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=TIMEOUT)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-20000:]
