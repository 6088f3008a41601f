"""The application-service registration file, and writing generated tokens back to the config."""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import TOKEN_PLACEHOLDERS, Config, ConfigError, load_config
from .credentials.crypto import create_key_file
from .own_key import config_relative, create_private_key_file, default_key_path, needs_signing_key
from .yaml_edit import set_scalars


def new_token() -> str:
    return secrets.token_urlsafe(48)


#: What has a meaning in a regex for every engine that reads a registration: Python's ``re``
#: (Synapse), Go's RE2 (Dendrite), Rust's ``regex`` (Conduit, conduwuit). Escaped, each stands for
#: itself in all of them; every other character already does (``re.escape`` also escapes ``-``,
#: ``#``, ``&``, ``~`` and white space, which older Rust regex versions refuse to see escaped).
_META = frozenset("\\.+*?()|[]{}^$")


def portable_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in _META else c for c in text)


# Namespaces are written "^...$" with "." (newline excluded in all three engines, none in DOTALL
# mode): Python's "\Z" is an error for RE2 and Rust, and "^" anchors Dendrite's unanchored
# search. Python's "$" also matches before a trailing newline, which only matters for an id
# ending in one: no Matrix id holds a newline, and the bridge matches ids with fullmatch.
def _template_regex(sigil: str, template: str, placeholder: str, domain: str) -> str:
    before, _, after = template.partition(placeholder)
    return f"^{sigil}{portable_escape(before)}.+{portable_escape(after)}:{portable_escape(domain)}$"


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
        bot_regex = f"^{portable_escape(config.bot_mxid)}$"
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
    #: The credential encryption key file, when this run created it.
    credentials_key: Path | None = None


def generate(
    config_path: Path, registration_path: Path, *, say: Callable[[str], None] | None = None
) -> Generated:
    """Fill missing tokens (and, when the REST API has no key material, the bridge's own
    signing key) into the config file, then write the registration file.

    Both files hold tokens: they are written owner-only from their creation, and an existing
    one that others may read is made owner-only first (and ``say`` told so).
    """
    for path in (config_path, registration_path):
        old_mode = tighten_private(path)
        if old_mode is not None and say is not None:
            say(
                f"{path} could be read by group or others (mode {old_mode:03o}); it holds "
                f"tokens, so it is now owner-only ({old_mode & 0o700:03o})."
            )
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
    credentials_key = config.credentials.key_file
    if credentials_key is None or os.environ.get(config.credentials.key_env):
        credentials_key = None
    elif not create_key_file(credentials_key):
        credentials_key = None  # there already
    return Generated(config, signing_key, credentials_key)


def tighten_private(path: Path) -> int | None:
    """Make an existing file that group or others may access owner-only; return its former
    permission bits, or None when it was fine (or is absent)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    path.chmod(mode & 0o700)
    return mode


def _write_private(path: Path, text: str) -> None:
    """Write a file holding secrets: owner-only from its creation, replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of an interrupted run, maybe with other modes
    # O_EXCL: a file (or link) someone put there in between is not written through.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    tmp.replace(path)
