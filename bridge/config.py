"""Typed configuration, loaded once at start.

Loading checks every key's type, refuses values left over from the example, and fails fast
with a :class:`ConfigError` naming the dotted key. Environment variables override keys:
``BRIDGE_<SECTION>__<KEY>[__<SUBKEY>...]`` (upper-case, double underscore between levels), the
value parsed as a YAML scalar, e.g. ``BRIDGE_APPSERVICE__PORT=29400`` or
``BRIDGE_APPSERVICE__HS_TOKEN=...``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

ENV_PREFIX = "BRIDGE_"
#: Token values that mean "not generated yet"; `bridge generate-registration` replaces them.
TOKEN_PLACEHOLDERS = frozenset({"", "generate", "change_me", "changeme"})
PERMISSION_LEVELS = ("block", "user", "admin")
_LOCALPART_RE = re.compile(r"^[a-z0-9._=\-/+]+$")
_SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, naming the dotted key it concerns."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class HomeserverConfig:
    address: str
    domain: str
    verify_ssl: bool = True


@dataclass(frozen=True)
class InboxConfig:
    workers: int = 4
    batch_size: int = 100
    lanes_per_claim: int = 16
    max_backlog: int = 20_000
    max_hold: float = 30.0
    keep_days: float = 7.0
    max_attempts: int = 3
    retry_delay: float = 1.0
    poll_interval: float = 2.0


@dataclass(frozen=True)
class OutboxConfig:
    workers: int = 4
    batch_size: int = 20
    max_attempts: int = 12
    retry_delay: float = 2.0
    max_retry_delay: float = 300.0
    poll_interval: float = 2.0
    request_timeout: float = 60.0


@dataclass(frozen=True)
class AppserviceConfig:
    address: str
    hostname: str
    port: int
    id: str
    bot_username: str
    bot_displayname: str
    as_token: str
    hs_token: str
    database: str
    embedded_data_dir: Path
    database_pool_min: int = 2
    database_pool_max: int = 20
    ephemeral_events: bool = True
    max_body_size: int = 32 * 1024 * 1024
    inbox: InboxConfig = field(default_factory=InboxConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)

    @property
    def uses_embedded_database(self) -> bool:
        return self.database == "embedded"


@dataclass(frozen=True)
class BridgeSettings:
    username_template: str
    alias_template: str
    displayname_template: str
    protocol_id: str
    permissions: Mapping[str, str]


@dataclass(frozen=True)
class JwtConfig:
    algorithm: str = "HS256"
    secret: str | None = None
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    private_key_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: int = 30


@dataclass(frozen=True)
class ApiConfig:
    enabled: bool = True
    token_name: str = "linkedin-access-token"  # noqa: S105 - a header name, not a secret
    jwt: JwtConfig = field(default_factory=JwtConfig)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True)
class Config:
    homeserver: HomeserverConfig
    appservice: AppserviceConfig
    bridge: BridgeSettings
    api: ApiConfig
    logging: LoggingConfig
    path: Path | None = None

    @property
    def bot_mxid(self) -> str:
        return f"@{self.appservice.bot_username}:{self.homeserver.domain}"

    def tokens_generated(self) -> bool:
        return (
            self.appservice.as_token.lower() not in TOKEN_PLACEHOLDERS
            and self.appservice.hs_token.lower() not in TOKEN_PLACEHOLDERS
        )

    def require_tokens(self) -> None:
        """Refuse to serve with the example's token placeholders."""
        for key in ("as_token", "hs_token"):
            if getattr(self.appservice, key).lower() in TOKEN_PLACEHOLDERS:
                raise ConfigError(
                    f"appservice.{key}",
                    "still the example's placeholder; run `bridge generate-registration` first",
                )

    def permission_level(self, user_id: str) -> str:
        """The permission level of a Matrix user: exact MXID, then server, then ``*``."""
        perms = self.bridge.permissions
        if user_id in perms:
            return perms[user_id]
        _, _, server = user_id.partition(":")
        if server in perms:
            return perms[server]
        return perms.get("*", "block")


class _Reader:
    """Typed access to a nested mapping, naming the dotted key on every error."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self._data = data
        self._prefix = prefix

    def key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def section(self, name: str, *, required: bool = True) -> _Reader:
        value = self._data.get(name)
        if value is None:
            if required:
                raise ConfigError(self.key(name), "missing section")
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(self.key(name), "must be a mapping")
        return _Reader(value, f"{self.key(name)}.")

    def get(
        self, name: str, kind: type[T], default: T | None = None, *, required: bool = False
    ) -> T:
        value = self._data.get(name)
        if value is None:
            if required or default is None:
                raise ConfigError(self.key(name), "required")
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool):
            raise ConfigError(self.key(name), "must be an integer")
        if not isinstance(value, kind):
            raise ConfigError(
                self.key(name), f"must be {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def optional(self, name: str, kind: type[T]) -> T | None:
        if self._data.get(name) is None:
            return None
        return self.get(name, kind)

    def mapping(self, name: str) -> Mapping[str, Any]:
        value = self._data.get(name) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(self.key(name), "must be a mapping")
        return value


def _positive(reader: _Reader, name: str, value: T) -> T:
    if isinstance(value, (int, float)) and value <= 0:
        raise ConfigError(reader.key(name), "must be positive")
    return value


def _check_url(key: str, value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(key, f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _check_template(key: str, value: str, placeholder: str) -> str:
    if value.count(placeholder) != 1:
        raise ConfigError(key, f"must contain {placeholder} exactly once")
    if not _LOCALPART_RE.match(value.replace(placeholder, "x")):
        raise ConfigError(key, "may only contain a-z, 0-9 and ._=-/+ around the placeholder")
    return value


def _resolve_path(base: Path | None, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _parse_homeserver(root: _Reader) -> HomeserverConfig:
    hs = root.section("homeserver")
    domain = hs.get("domain", str, required=True)
    if not _SERVER_NAME_RE.match(domain):
        raise ConfigError(hs.key("domain"), f"not a valid server name: {domain!r}")
    return HomeserverConfig(
        address=_check_url(hs.key("address"), hs.get("address", str, required=True)),
        domain=domain,
        verify_ssl=hs.get("verify_ssl", bool, True),
    )


def _parse_inbox(asr: _Reader) -> InboxConfig:
    ib = asr.section("inbox", required=False)
    max_backlog = ib.get("max_backlog", int, 20_000)
    if max_backlog < 0:
        raise ConfigError(ib.key("max_backlog"), "must be 0 (no limit) or a positive number")
    keep_days = ib.get("keep_days", float, 7.0)
    if keep_days < 0:
        raise ConfigError(ib.key("keep_days"), "must be 0 (keep forever) or more")
    max_hold = ib.get("max_hold", float, 30.0)
    if not 0 < max_hold <= 50:
        raise ConfigError(
            ib.key("max_hold"), "must be more than 0 and at most 50 (the homeserver waits 60 s)"
        )
    return InboxConfig(
        workers=_positive(ib, "workers", ib.get("workers", int, 4)),
        batch_size=_positive(ib, "batch_size", ib.get("batch_size", int, 100)),
        lanes_per_claim=_positive(ib, "lanes_per_claim", ib.get("lanes_per_claim", int, 16)),
        max_backlog=max_backlog,
        max_hold=max_hold,
        keep_days=keep_days,
        max_attempts=_positive(ib, "max_attempts", ib.get("max_attempts", int, 3)),
        retry_delay=_positive(ib, "retry_delay", ib.get("retry_delay", float, 1.0)),
        poll_interval=_positive(ib, "poll_interval", ib.get("poll_interval", float, 2.0)),
    )


def _parse_outbox(asr: _Reader) -> OutboxConfig:
    ob = asr.section("outbox", required=False)
    defaults = OutboxConfig()
    values: dict[str, Any] = {}
    for name in ("workers", "batch_size", "max_attempts"):
        values[name] = _positive(ob, name, ob.get(name, int, getattr(defaults, name)))
    for name in ("retry_delay", "max_retry_delay", "poll_interval", "request_timeout"):
        values[name] = _positive(ob, name, ob.get(name, float, getattr(defaults, name)))
    return OutboxConfig(**values)


def _parse_appservice(root: _Reader, base: Path | None) -> AppserviceConfig:
    asr = root.section("appservice")
    port = asr.get("port", int, required=True)
    if not 0 < port < 65536:
        raise ConfigError(asr.key("port"), "must be between 1 and 65535")
    database = asr.get("database", str, "embedded")
    if database != "embedded" and not re.match(r"^postgres(ql)?://", database):
        raise ConfigError(asr.key("database"), "must be 'embedded' or a postgres:// URL")
    bot_username = asr.get("bot_username", str, required=True)
    if not _LOCALPART_RE.match(bot_username):
        raise ConfigError(asr.key("bot_username"), "not a valid Matrix localpart")
    as_id = asr.get("id", str, required=True)
    if not re.match(r"^[A-Za-z0-9_.\-]+$", as_id):
        raise ConfigError(asr.key("id"), "may only contain letters, digits and _.-")
    pool_min = asr.get("database_pool_min", int, 2)
    pool_max = asr.get("database_pool_max", int, 20)
    if pool_min < 1 or pool_max < pool_min:
        raise ConfigError(asr.key("database_pool_max"), "must be >= database_pool_min >= 1")
    inbox, outbox = _parse_inbox(asr), _parse_outbox(asr)
    # Every inbox and outbox worker holds a connection while it works; requests need some too.
    needed = inbox.workers + outbox.workers + 2
    if pool_max < needed:
        raise ConfigError(
            asr.key("database_pool_max"),
            f"must be at least inbox.workers + outbox.workers + 2 = {needed}",
        )
    return AppserviceConfig(
        address=_check_url(asr.key("address"), asr.get("address", str, required=True)),
        hostname=asr.get("hostname", str, "127.0.0.1"),
        port=port,
        id=as_id,
        bot_username=bot_username,
        bot_displayname=asr.get("bot_displayname", str, "Network bridge bot"),
        as_token=str(asr.get("as_token", str, "generate")),
        hs_token=str(asr.get("hs_token", str, "generate")),
        database=database,
        embedded_data_dir=_resolve_path(base, asr.get("embedded_data_dir", str, "data/postgres")),
        database_pool_min=pool_min,
        database_pool_max=pool_max,
        ephemeral_events=asr.get("ephemeral_events", bool, True),
        max_body_size=_positive(asr, "max_body_size", asr.get("max_body_size", int, 32 << 20)),
        inbox=inbox,
        outbox=outbox,
    )


def _parse_bridge(root: _Reader) -> BridgeSettings:
    br = root.section("bridge")
    permissions: dict[str, str] = {}
    for who, level in br.mapping("permissions").items():
        key = br.key(f"permissions.{who}")
        if level not in PERMISSION_LEVELS:
            raise ConfigError(key, f"level must be one of {', '.join(PERMISSION_LEVELS)}")
        if who != "*" and not (who.startswith("@") or _SERVER_NAME_RE.match(str(who))):
            raise ConfigError(key, "must be '*', a server name or an MXID")
        permissions[str(who)] = level
    protocol_id = br.get("protocol_id", str, "professional-network")
    if not re.match(r"^[a-z0-9_.\-]+$", protocol_id):
        raise ConfigError(br.key("protocol_id"), "may only contain a-z, 0-9 and _.-")
    return BridgeSettings(
        username_template=_check_template(
            br.key("username_template"),
            br.get("username_template", str, "_pn_{userid}"),
            "{userid}",
        ),
        alias_template=_check_template(
            br.key("alias_template"),
            br.get("alias_template", str, "_pn_conv_{conversationid}"),
            "{conversationid}",
        ),
        displayname_template=br.get("displayname_template", str, "{displayname}"),
        protocol_id=protocol_id,
        permissions=permissions,
    )


def _parse_api(root: _Reader, base: Path | None) -> ApiConfig:
    api = root.section("api", required=False)
    jwt = api.section("jwt", required=False)
    algorithm = jwt.get("algorithm", str, "HS256")
    if algorithm not in ("HS256", "RS256"):
        raise ConfigError(jwt.key("algorithm"), "must be HS256 or RS256")

    def path(name: str) -> Path | None:
        value = jwt.optional(name, str)
        return _resolve_path(base, value) if value else None

    token_name = api.get("token_name", str, ApiConfig.token_name)
    if not re.match(r"^[A-Za-z0-9_\-]+$", token_name):
        raise ConfigError(api.key("token_name"), "must be a header/cookie name")
    return ApiConfig(
        enabled=api.get("enabled", bool, True),
        token_name=token_name,
        jwt=JwtConfig(
            algorithm=algorithm,
            secret=jwt.optional("secret", str),
            public_key_file=path("public_key_file"),
            jwks_file=path("jwks_file"),
            private_key_file=path("private_key_file"),
            issuer=jwt.optional("issuer", str),
            audience=jwt.optional("audience", str),
            leeway=jwt.get("leeway", int, 30),
        ),
    )


def _parse_logging(root: _Reader) -> LoggingConfig:
    lg = root.section("logging", required=False)
    level = lg.get("level", str, "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(lg.key("level"), "must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    fmt = lg.get("format", str, "text")
    if fmt not in ("text", "json"):
        raise ConfigError(lg.key("format"), "must be text or json")
    return LoggingConfig(level=level, format=fmt)


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``BRIDGE_SECTION__KEY=value`` overrides onto the raw config mapping."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(name, "empty key level in environment override")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts), "environment override under a non-mapping key")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise ConfigError(".".join(parts), f"unparseable environment value: {exc}") from None
    return data


def parse_config(data: Mapping[str, Any], *, path: Path | None = None) -> Config:
    """Build a :class:`Config` from a raw mapping (already with env overrides applied)."""
    root = _Reader(data)
    base = path.parent if path is not None else None
    return Config(
        homeserver=_parse_homeserver(root),
        appservice=_parse_appservice(root, base),
        bridge=_parse_bridge(root),
        api=_parse_api(root, base),
        logging=_parse_logging(root),
        path=path,
    )


def read_raw(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("(file)", f"{path} does not exist") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("(file)", f"{path} must hold a mapping at the top level")
    return data


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate the config file at ``path``."""
    data = apply_env_overrides(read_raw(path), os.environ if environ is None else environ)
    return parse_config(data, path=path.resolve())
