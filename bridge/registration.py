"""The application-service registration file, and writing generated tokens back to the config."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import TOKEN_PLACEHOLDERS, Config, ConfigError, load_config
from .own_key import config_relative, create_private_key_file, default_key_path, needs_signing_key
from .yaml_edit import set_scalars


def new_token() -> str:
    return secrets.token_urlsafe(48)


def _template_regex(sigil: str, template: str, placeholder: str, domain: str) -> str:
    before, _, after = template.partition(placeholder)
    return f"{sigil}{re.escape(before)}.+{re.escape(after)}:{re.escape(domain)}$"


def user_namespace_regex(config: Config) -> str:
    return _template_regex(
        "@", config.bridge.username_template, "{userid}", config.homeserver.domain
    )


def alias_namespace_regex(config: Config) -> str:
    return _template_regex(
        "#", config.bridge.alias_template, "{conversationid}", config.homeserver.domain
    )


def build_registration(config: Config) -> dict[str, Any]:
    """The registration the homeserver loads (``app_service_config_files``)."""
    config.require_tokens()
    user_regex = user_namespace_regex(config)
    namespaces: dict[str, list[dict[str, Any]]] = {
        "users": [{"exclusive": True, "regex": user_regex}],
        "aliases": [{"exclusive": True, "regex": alias_namespace_regex(config)}],
        "rooms": [],
    }
    if not re.match(user_regex, config.bot_mxid):
        bot_regex = f"^{re.escape(config.bot_mxid)}$"
        namespaces["users"].append({"exclusive": True, "regex": bot_regex})
    registration: dict[str, Any] = {
        "id": config.appservice.id,
        "url": config.appservice.address,
        "as_token": config.appservice.as_token,
        "hs_token": config.appservice.hs_token,
        "sender_localpart": config.appservice.bot_username,
        "rate_limited": False,
        "namespaces": namespaces,
        "protocols": [config.bridge.protocol_id],
    }
    if config.appservice.ephemeral_events:
        registration["receive_ephemeral"] = True
        registration["de.sorunome.msc2409.push_ephemeral"] = True
    return registration


def set_appservice_tokens(text: str, tokens: dict[str, str]) -> str:
    """Set ``appservice.<key>`` scalars in YAML text, keeping every comment and line.

    Only direct children of the top-level ``appservice:`` mapping are touched; a key that is
    absent is added as the section's first child.
    """
    return set_scalars(text, ["appservice"], tokens)


@dataclass(frozen=True)
class Generated:
    """What ``generate`` did: the config as now written, and the signing key it created."""

    config: Config
    #: The bridge's own signing key file, when this run created it (or adopted one left there).
    signing_key: Path | None = None


def generate(config_path: Path, registration_path: Path) -> Generated:
    """Fill missing tokens (and, when the REST API has no key material, the bridge's own
    signing key) into the config file, then write the registration file."""
    config = load_config(config_path)
    missing: dict[str, str] = {}
    if config.appservice.as_token.lower() in TOKEN_PLACEHOLDERS:
        missing["as_token"] = new_token()
    if config.appservice.hs_token.lower() in TOKEN_PLACEHOLDERS:
        missing["hs_token"] = new_token()
    jwt_settings: dict[str, str] = {}
    signing_key: Path | None = None
    if needs_signing_key(config):
        signing_key = default_key_path(config)
        create_private_key_file(signing_key)
        jwt_settings = {
            "algorithm": "RS256",
            "private_key_file": config_relative(config_path, signing_key),
        }
    elif (key_file := config.api.jwt.private_key_file) is not None and not key_file.exists():
        if config.api.jwt.algorithm == "RS256":
            create_private_key_file(key_file)  # named in the config, not made yet
            signing_key = key_file
    if missing or jwt_settings:
        text = config_path.read_text(encoding="utf-8")
        if missing:
            text = set_appservice_tokens(text, missing)
        if jwt_settings:
            text = set_scalars(text, ["api", "jwt"], jwt_settings)
        _write_private(config_path, text)
    config = load_config(config_path)
    for key, value in missing.items():
        if getattr(config.appservice, key) != value:
            raise ConfigError(f"appservice.{key}", "could not be written back into the config")
    if jwt_settings and (
        config.api.jwt.algorithm != "RS256"
        or config.api.jwt.private_key_file is None
        or signing_key is None
        or config.api.jwt.private_key_file.resolve() != signing_key.resolve()
    ):
        raise ConfigError("api.jwt.private_key_file", "could not be written back into the config")
    registration = build_registration(config)
    _write_private(
        registration_path, yaml.safe_dump(registration, sort_keys=False, default_flow_style=False)
    )
    return Generated(config, signing_key)


def _write_private(path: Path, text: str) -> None:
    """Write a file holding secrets: owner-only, replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
