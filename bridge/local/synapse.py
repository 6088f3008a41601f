"""A local Synapse on loopback: its config, its signing key, shared-secret registration.

The homeserver listens on 127.0.0.1 only, keeps its data in SQLite in its own directory, loads
the given application-service registrations and has its rate limits relaxed, so that a demo or
a test can do in seconds what a person would do over minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from .processes import ManagedProcess, child_env

#: A limit no demo or test reaches.
RELAXED_LIMIT = {"per_second": 10000, "burst_count": 100000}


def synapse_installed() -> bool:
    """Whether the ``matrix-synapse`` package is importable by this interpreter."""
    return importlib.util.find_spec("synapse") is not None


@dataclass(frozen=True)
class SynapseFiles:
    """Where a local Synapse keeps its config and data (all under ``directory``)."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "homeserver.yaml"

    @property
    def log_config(self) -> Path:
        return self.directory / "log.config"

    @property
    def database(self) -> Path:
        return self.directory / "homeserver.db"


def homeserver_config(
    files: SynapseFiles,
    *,
    server_name: str,
    port: int,
    app_service_config_files: list[Path],
) -> dict[str, Any]:
    """``homeserver.yaml`` of a local Synapse (fresh secrets every time it is made)."""
    limit = RELAXED_LIMIT
    return {
        "server_name": server_name,
        "listeners": [{
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["client"], "compress": False}],
        }],
        "database": {"name": "sqlite3", "args": {"database": str(files.database)}},
        "log_config": str(files.log_config),
        "media_store_path": str(files.directory / "media_store"),
        "signing_key_path": str(files.directory / f"{server_name}.signing.key"),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "report_stats": False,
        "enable_registration": False,
        "registration_shared_secret": secrets.token_urlsafe(32),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "bcrypt_rounds": 4,  # logins in milliseconds, not a quarter second each
        "app_service_config_files": [str(p) for p in app_service_config_files],
        "rc_message": limit,
        "rc_registration": limit,
        "rc_room_creation": limit,
        "rc_joins": {"local": limit, "remote": limit},
        "rc_joins_per_room": limit,
        "rc_invites": {"per_room": limit, "per_user": limit, "per_issuer": limit},
        "rc_login": {"address": limit, "account": limit, "failed_attempts": limit},
    }


def _log_config(level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"precise": {
            "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                      "%(request)s - %(message)s",
        }},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "precise"}},
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": level, "handlers": ["console"]},
        "disable_existing_loggers": False,
    }


def write_config(files: SynapseFiles, config: dict[str, Any], *, log_level: str = "INFO") -> None:
    """Write ``homeserver.yaml`` and its logging config, then let Synapse make its keys."""
    files.directory.mkdir(parents=True, exist_ok=True)
    files.log_config.write_text(yaml.safe_dump(_log_config(log_level)))
    tmp = files.config.with_name(f".{files.config.name}.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)  # it holds the registration secret
    tmp.replace(files.config)
    done = subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "-c", str(files.config),
         "--generate-keys"],
        cwd=files.directory, env=child_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"synapse --generate-keys failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )


class SynapseProcess(ManagedProcess):
    """A local Synapse run from ``files`` (readiness: ``/health``)."""

    def __init__(
        self, files: SynapseFiles, *, port: int, log_path: Path, label: str = "bridge"
    ) -> None:
        super().__init__(
            name="synapse",
            argv=[sys.executable, "-m", "synapse.app.homeserver", "-c", str(files.config)],
            cwd=files.directory,
            env=child_env(),
            log_path=log_path,
            ready_url=f"http://127.0.0.1:{port}/health",
            label=label,
        )
        self.files = files
        self.config_path = files.config
        self.db_path = files.database
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def shared_secret(self) -> str:
        config = yaml.safe_load(self.config_path.read_text())
        return str(config["registration_shared_secret"])


class RegistrationError(RuntimeError):
    """The homeserver refused to register a user."""


async def register_user(
    homeserver_url: str,
    shared_secret: str,
    localpart: str,
    password: str,
    *,
    admin: bool = False,
) -> dict[str, Any]:
    """Register a Matrix user with Synapse's shared secret; its ``user_id`` and ``access_token``.

    Raises :class:`RegistrationError` with the homeserver's answer (``M_USER_IN_USE`` when the
    localpart is taken).
    """
    url = f"{homeserver_url}/_synapse/admin/v1/register"
    async with aiohttp.ClientSession(trust_env=False) as session:
        async with session.get(url) as resp:
            resp.raise_for_status()
            nonce = (await resp.json())["nonce"]
        mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode())
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        body = {"nonce": nonce, "username": localpart, "password": password, "admin": admin,
                "mac": mac.hexdigest()}
        async with session.post(url, json=body) as resp:
            if resp.status != 200:
                raise RegistrationError(
                    f"registering {localpart}: HTTP {resp.status} {await resp.text()}"
                )
            registered: dict[str, Any] = await resp.json()
    return registered
