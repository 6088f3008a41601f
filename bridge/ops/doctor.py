"""``bridge doctor``: the whole chain checked, each check saying what it looked at and, when it
fails, what to do."""

from __future__ import annotations

import asyncio
import fcntl
import hmac
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from ..api.app import build_verifier
from ..api.auth import is_admin
from ..cli_token import mint_token
from ..config import Config, ConfigError, load_config
from ..db.embedded import EmbeddedPostgresError
from ..db.schema import SchemaError, check_schema
from ..errors import BridgeError
from ..registration import build_registration
from .database import operator_database

#: Clock skew past this many seconds fails (the JWT leeway is 30 s by default).
MAX_SKEW = 30.0
_TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class _Failed(Exception):
    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class Doctor:
    def __init__(self, config: Config, registration_path: Path) -> None:
        self._config = config
        self._registration = registration_path
        self._hs_date: float | None = None
        self._hs_date_local: float | None = None

    async def run(self) -> list[Check]:
        checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("registration", self.registration),
            ("homeserver", self.homeserver),
            ("appservice token", self.as_token),
            ("ping", self.ping),
            ("database", self.database),
            ("jwt", self.jwt),
            ("clock", self.clock),
        ]
        results = []
        async with aiohttp.ClientSession(timeout=_TIMEOUT, trust_env=False) as session:
            self._session = session
            for name, check in checks:
                try:
                    results.append(Check(name, True, await check()))
                except _Failed as exc:
                    results.append(Check(name, False, exc.detail, exc.fix))
        return results

    # --- checks -----------------------------------------------------------------------------

    async def registration(self) -> str:
        path = self._registration
        try:
            found = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _Failed(
                f"{path} does not exist",
                "run `bridge generate-registration -c config.yaml -r registration.yaml`",
            ) from None
        except (OSError, yaml.YAMLError) as exc:
            raise _Failed(f"{path} is unreadable: {exc}", "regenerate it") from None
        if not isinstance(found, dict):
            raise _Failed(f"{path} holds no mapping", "regenerate it")
        expected = build_registration(self._config)
        wrong = []
        for key in ("as_token", "hs_token"):
            if not hmac.compare_digest(str(found.get(key, "")).encode(), expected[key].encode()):
                wrong.append(key)
        for key in ("id", "url", "sender_localpart", "namespaces"):
            if found.get(key) != expected[key]:
                wrong.append(key)
        if wrong:
            raise _Failed(
                f"{path} differs from the config in: {', '.join(wrong)}",
                "run `bridge generate-registration` again, then restart the homeserver so it "
                "loads the new file",
            )
        return (
            f"{path} matches the config (tokens, namespaces, url {expected['url']}, "
            f"bot {self._config.bot_mxid})"
        )

    async def homeserver(self) -> str:
        url = f"{self._config.homeserver.address}/_matrix/client/versions"
        started = time.monotonic()
        try:
            async with self._session.get(url) as resp:
                body = await resp.json(content_type=None)
                self._hs_date_local = time.time()
                date = resp.headers.get("Date")
                self._hs_date = parsedate_to_datetime(date).timestamp() if date else None
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise _Failed(
                f"{url} did not answer: {exc or type(exc).__name__}",
                "start the homeserver, or fix homeserver.address",
            ) from None
        if status != 200 or not isinstance(body, dict):
            raise _Failed(f"{url} answered HTTP {status}", "check homeserver.address")
        versions = body.get("versions") or []
        took = (time.monotonic() - started) * 1000
        return f"{url} answered in {took:.0f} ms; versions {', '.join(map(str, versions[-3:]))}"

    async def _matrix(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self._config.homeserver.address}{path}"
        headers = {"Authorization": f"Bearer {self._config.appservice.as_token}"}
        try:
            async with self._session.request(method, url, json=body, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise _Failed(
                f"{method} {path} failed: {exc or type(exc).__name__}",
                "start the homeserver, or fix homeserver.address",
            ) from None

    async def as_token(self) -> str:
        status, body = await self._matrix(
            "GET", f"/_matrix/client/v3/account/whoami?user_id={self._config.bot_mxid}"
        )
        if (
            status == 200
            and isinstance(body, dict)
            and body.get("user_id") == self._config.bot_mxid
        ):
            return f"the homeserver accepts the as_token as {self._config.bot_mxid}"
        errcode = body.get("errcode") if isinstance(body, dict) else None
        raise _Failed(
            f"the homeserver refused the as_token: HTTP {status} {errcode or ''}".strip(),
            "add the registration file to the homeserver's app_service_config_files and "
            "restart it (after any `bridge generate-registration`)",
        )

    async def ping(self) -> str:
        appservice_id = self._config.appservice.id
        started = time.monotonic()
        status, body = await self._matrix(
            "POST",
            f"/_matrix/client/v1/appservice/{appservice_id}/ping",
            {"transaction_id": f"doctor-{secrets.token_hex(4)}"},
        )
        if status == 200 and isinstance(body, dict):
            took = body.get("duration_ms", (time.monotonic() - started) * 1000)
            return (
                f"the homeserver reached the bridge at {self._config.appservice.address} "
                f"and back in {took} ms"
            )
        errcode = body.get("errcode") if isinstance(body, dict) else None
        message = body.get("error") if isinstance(body, dict) else None
        bridge_status = body.get("status") if isinstance(body, dict) else None
        fix = {
            "M_CONNECTION_FAILED": "is the bridge running (`bridge run`) and reachable from "
            "the homeserver at appservice.address?",
            "M_CONNECTION_TIMEOUT": "the bridge did not answer in time: is it overloaded, or "
            "appservice.address pointing elsewhere?",
        }.get(str(errcode), "")
        if bridge_status in (401, 403):
            fix = (
                "the bridge refused the homeserver's hs_token: the homeserver has an old "
                "registration; restart it after `bridge generate-registration`"
            )
        if not fix:
            fix = "check the registration's url and id, and the homeserver's log"
        raise _Failed(
            f"appservice ping failed: HTTP {status} {errcode or ''} {message or ''}".strip()
            + (f" (the bridge answered {bridge_status})" if bridge_status else ""),
            fix,
        )

    async def database(self) -> str:
        config = self._config
        holder = ""
        if config.appservice.uses_embedded_database:
            holder = _lock_holder(config.appservice.embedded_data_dir)
        try:
            async with operator_database(config) as opened:
                conn = await asyncpg.connect(opened.dsn, timeout=10)
                try:
                    revision = await check_schema(conn)
                finally:
                    await conn.close()
        except SchemaError as exc:
            raise _Failed(str(exc), "run `bridge migrate -c config.yaml`") from None
        except EmbeddedPostgresError as exc:
            raise _Failed(
                str(exc),
                "stop the other process using the data directory, or set "
                "appservice.embedded_data_dir",
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise _Failed(
                f"cannot reach the database: {exc}",
                "check appservice.database (or the embedded data directory)",
            ) from None
        where = {
            "external": "the configured server",
            "embedded": "the embedded PostgreSQL (started for this check; no one else held it)",
            "running bridge": f"the running bridge's embedded PostgreSQL ({holder})",
        }[opened.how]
        return f"{where} answers; schema at head ({revision})"

    async def jwt(self) -> str:
        config = self._config
        if not config.api.enabled:
            return "the REST API is disabled (api.enabled: false)"
        jwt_config = config.api.jwt
        try:
            verifier, _ = build_verifier(config)
        except ConfigError as exc:
            raise _Failed(str(exc), "fix the api.jwt keys") from None
        if not verifier.configured:
            raise _Failed(
                "api.jwt.secret is not set: the REST API refuses every token",
                "set api.jwt.secret (HS256) or configure RS256 keys",
            )
        try:
            token = mint_token(config, uuid.uuid4(), admin=True, ttl=60)
        except ConfigError:
            algorithm = jwt_config.algorithm
            return f"{algorithm} verification keys load (no private key to mint a test token)"
        try:
            claims = verifier.verify(token)
        except BridgeError as exc:
            raise _Failed(
                f"a token minted here does not verify: {exc.message}", "fix api.jwt"
            ) from None
        if not is_admin(claims):
            raise _Failed("a minted admin token lost its role", "fix api.jwt")
        return f"a {jwt_config.algorithm} token minted with the config verifies"

    async def clock(self) -> str:
        if self._hs_date is None or self._hs_date_local is None:
            raise _Failed(
                "the homeserver sent no Date header (or did not answer)",
                "check the homeserver first",
            )
        # The Date header has one-second resolution: allow for it.
        skew = self._hs_date_local - self._hs_date
        if abs(skew) > MAX_SKEW + 1:
            raise _Failed(
                f"this clock is {skew:+.0f} s off the homeserver's",
                "synchronise the clocks (NTP); tokens and timestamps depend on them",
            )
        return f"within {max(abs(skew), 1):.0f} s of the homeserver's clock"


def _lock_holder(data_dir: Path) -> str:
    """Who holds the embedded data directory's lock: 'nobody' or 'pid N'."""
    lock_path = data_dir.with_name(data_dir.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return "nobody"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return f"held by pid {text}" if text.isdigit() else "held"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "nobody"
    finally:
        os.close(fd)


def diagnose(config_path: Path, registration_path: Path) -> list[Check]:
    """Run every check; a config that does not load is the only check then."""
    try:
        config = load_config(config_path)
        config.require_tokens()
    except ConfigError as exc:
        return [Check("config", False, str(exc), "fix the key named, then run doctor again")]
    first = Check("config", True, f"{config_path} is valid")
    return [first, *asyncio.run(Doctor(config, registration_path).run())]


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
