"""Credentials benchmark: what authenticating a REST request by API key costs, against a JWT.

The REST API runs in this process on a private Postgres holding many accounts and credentials
(every account an API key, a Basic credential, an OAuth client, and other credentials, so the
lookup index is not trivially small). The same cheap authenticated call (the account's
conversation list, empty, so the handler costs the same whichever way in) is made
sequentially with each way of authenticating, interleaved round-robin so drift hits all alike:

- ``jwt``: an HS256 JWT from an external issuer (the reference);
- ``api_key``: ``Authorization: Bearer <token credential secret>``;
- ``basic``: ``Authorization: Basic`` with a basic credential;
- ``client_jwt``: an RS256 JWT the bridge issued at ``/auth-api/token`` (checked against its
  credential on every request).

Time is measured server-side (a middleware outermost on the application: authentication, the
handler and rendering) and client-side (the round trip). The goal: the API key's p50 within
1 ms of the JWT's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import jwt
from aiohttp import web

from bench.common import (
    HOST,
    BenchError,
    Cluster,
    free_port,
    header_line,
    ignore_interrupts,
    install_interrupts,
    log,
    machine_facts,
    markdown_table,
    percentile,
    server_version,
    workdir,
)
from bridge.api import ApiServices, mount_api
from bridge.api.signing_keys import ensure_signing_key
from bridge.config import parse_config
from bridge.credentials.crypto import create_key_file
from bridge.credentials.models import (
    BasicCredential,
    CredentialCreate,
    OAuthClientCredential,
    SecretCredential,
    TokenCredential,
)
from bridge.credentials.service import Actor
from bridge.credentials.setup import build_credentials
from bridge.db.database import Database
from bridge.db.schema import ensure_schema
from bridge.services import build_services

GOAL_MS = 1.0
SECRET = "bench-shared-secret-of-at-least-32-bytes"
PATH = "/messaging-api/v1/conversations"
KINDS = ("jwt", "api_key", "basic", "client_jwt")
KIND_HEADER = "X-Bench-Kind"


@dataclass(frozen=True)
class Sizes:
    accounts: int
    extra_per_account: int
    requests: int
    warmup: int


FULL = Sizes(accounts=1000, extra_per_account=10, requests=3000, warmup=300)
QUICK = Sizes(accounts=100, extra_per_account=3, requests=500, warmup=100)


@dataclass(frozen=True)
class Account:
    user_id: uuid.UUID
    jwt: str
    api_key: str
    basic: str
    client_id: str
    client_secret: str


def _config(root: Path) -> Any:
    data = {
        "homeserver": {"address": "http://127.0.0.1:8008", "domain": "bench.local"},
        "appservice": {
            "address": "http://127.0.0.1:29400",
            "port": 29400,
            "id": "bench",
            "bot_username": "_bench_bot",
            "as_token": "bench-as-token",
            "hs_token": "bench-hs-token",
        },
        "bridge": {"permissions": {"*": "user"}},
        "api": {"jwt": {"algorithm": "HS256", "secret": SECRET, "key_dir": str(root / "keys")}},
        "credentials": {"key_file": str(root / "credentials.key")},
        "logging": {"level": "WARNING"},
    }
    return parse_config(data)


async def _populate(services: ApiServices, db: Database, z: Sizes) -> list[Account]:
    assert services.credentials is not None
    credentials = services.credentials
    accounts = []
    now = int(time.time())
    for i in range(z.accounts):
        async with db.transaction() as conn:
            user = await services.users.create(conn, f"Bench {i}")
        actor = Actor(user.id, is_admin=False)
        _, key = await credentials.create(
            actor, user.id, CredentialCreate(config=TokenCredential())
        )
        password = f"password-{i}-{uuid.uuid4().hex}"
        await credentials.create(
            actor,
            user.id,
            CredentialCreate(config=BasicCredential(username=f"svc{i}", secret=password)),
        )
        _, client = await credentials.create(
            actor, user.id, CredentialCreate(config=OAuthClientCredential(client_id=f"client{i}"))
        )
        for j in range(z.extra_per_account):
            await credentials.create(
                actor,
                user.id,
                CredentialCreate(name=f"extra-{j}", config=SecretCredential(secret="s")),
            )
        token = jwt.encode(
            {"sub": str(user.id), "iat": now, "exp": now + 86_400}, SECRET, algorithm="HS256"
        )
        basic = _b64(f"svc{i}", password)
        accounts.append(
            Account(user.id, token, key["secret"], basic, f"client{i}", client["client_secret"])
        )
        if (i + 1) % max(1, z.accounts // 10) == 0:
            log(f"  {i + 1}/{z.accounts} accounts")
    return accounts


def _b64(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


async def _client_token(session: aiohttp.ClientSession, base: str, account: Account) -> str:
    async with session.post(
        f"{base}/auth-api/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {_b64(account.client_id, account.client_secret)}"},
    ) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise BenchError(f"token endpoint answered {resp.status}: {body}")
        return str(body["access_token"])


async def run(args: argparse.Namespace, z: Sizes, cluster: Cluster, root: Path) -> dict[str, Any]:
    facts = machine_facts()
    pg = await server_version(cluster.admin_dsn)
    dsn = await cluster.create_database("bench_credentials")
    await ensure_schema(dsn, migrate=True)
    config = _config(root)
    assert config.credentials.key_file is not None and config.api.jwt.key_dir is not None
    create_key_file(config.credentials.key_file)
    ensure_signing_key(config.api.jwt.key_dir)
    db = Database(dsn, min_size=2, max_size=10)
    await db.open()
    server_ms: dict[str, list[float]] = {kind: [] for kind in KINDS}
    client_ms: dict[str, list[float]] = {kind: [] for kind in KINDS}

    @web.middleware
    async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        kind = request.headers.get(KIND_HEADER)
        if kind in server_ms and response.status == 200:
            server_ms[kind].append((time.perf_counter() - started) * 1000)
        return response

    try:
        services = build_services(db)
        creds = build_credentials(config, db, services.users)
        services = dataclasses.replace(
            services, credentials=creds.service, credential_auth=creds.auth
        )
        log(f"creating {z.accounts} accounts, {z.accounts * (3 + z.extra_per_account)} credentials")
        accounts = await _populate(services, db, z)
        app = web.Application(middlewares=[timing])
        mount_api(app, config, db, services)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, HOST, port).start()
        base = f"http://{HOST}:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                client_tokens = {a.user_id: await _client_token(session, base, a) for a in accounts}

                def headers(kind: str, account: Account) -> dict[str, str]:
                    value = {
                        "jwt": f"Bearer {account.jwt}",
                        "api_key": f"Bearer {account.api_key}",
                        "basic": f"Basic {account.basic}",
                        "client_jwt": f"Bearer {client_tokens[account.user_id]}",
                    }[kind]
                    return {"Authorization": value, KIND_HEADER: kind}

                async def call(i: int, kind: str, record: bool) -> None:
                    account = accounts[i % len(accounts)]
                    started = time.perf_counter()
                    async with session.get(f"{base}{PATH}", headers=headers(kind, account)) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise BenchError(f"{kind}: {resp.status} {await resp.text()}")
                    if record:
                        client_ms[kind].append((time.perf_counter() - started) * 1000)

                log(f"warming up ({z.warmup} calls per kind)")
                for i in range(z.warmup):
                    for kind in KINDS:
                        await call(i, kind, record=False)
                for values in server_ms.values():
                    values.clear()
                log(f"measuring ({z.requests} calls per kind, interleaved)")
                for i in range(z.requests):
                    for kind in KINDS[i % len(KINDS) :] + KINDS[: i % len(KINDS)]:
                        await call(i, kind, record=True)
        finally:
            await runner.cleanup()
    finally:
        await db.close()

    def summary(values: list[float]) -> dict[str, float]:
        return {p: percentile(values, float(p[1:])) for p in ("p50", "p90", "p99")}

    report: dict[str, Any] = {
        "machine": facts,
        "postgres": pg,
        "sizes": z.__dict__,
        "server": {kind: summary(server_ms[kind]) for kind in KINDS},
        "client": {kind: summary(client_ms[kind]) for kind in KINDS},
    }
    for where in ("server", "client"):
        reference = report[where]["jwt"]["p50"]
        report[f"{where}_p50_over_jwt"] = {
            kind: report[where][kind]["p50"] - reference for kind in KINDS
        }
    report["goal_ms"] = GOAL_MS
    report["meets_goal"] = report["server_p50_over_jwt"]["api_key"] < GOAL_MS
    return report


def print_report(report: dict[str, Any], out: TextIO) -> None:
    print(header_line("Credentials benchmark", report["machine"], report["postgres"]), file=out)
    z = report["sizes"]
    print(
        f"{z['accounts']} accounts, {z['accounts'] * (3 + z['extra_per_account'])} credentials; "
        f"{z['requests']} calls per way in, interleaved; GET {PATH} (empty list)",
        file=out,
    )
    print(file=out)
    rows = []
    for kind in KINDS:
        s, c = report["server"][kind], report["client"][kind]
        rows.append(
            [
                kind,
                s["p50"],
                s["p90"],
                s["p99"],
                report["server_p50_over_jwt"][kind],
                c["p50"],
                c["p99"],
                report["client_p50_over_jwt"][kind],
            ]
        )
    markdown_table(
        [
            "way in",
            "server p50 ms",
            "p90",
            "p99",
            "p50 over jwt",
            "round trip p50 ms",
            "p99",
            "p50 over jwt",
        ],
        rows,
        out,
    )
    over = report["server_p50_over_jwt"]["api_key"]
    verdict = "meets" if report["meets_goal"] else "MISSES"
    print(file=out)
    print(
        f"API key over JWT at p50 (server-side): {over:+.3f} ms; goal < {report['goal_ms']} ms: "
        f"{verdict}",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.credentials_auth", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a small data set, ~30 s")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    install_interrupts()
    z = QUICK if args.quick else FULL
    status = 1
    with workdir("bridge-bench-credentials-") as root:
        cluster = Cluster(root)
        try:
            log("starting Postgres")
            cluster.start()
            report = asyncio.run(run(args, z, cluster, root))
            if args.json:
                json.dump(report, sys.stdout, indent=2, default=str)
                print()
            else:
                print_report(report, sys.stdout)
            status = 0 if report["meets_goal"] else 3
        except KeyboardInterrupt:
            log("interrupted")
            status = 130
        except BenchError as exc:
            log(f"error: {exc}")
        finally:
            ignore_interrupts()
            cluster.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
