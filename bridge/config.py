"""Typed configuration, loaded once at start.

Loading checks every key's type, refuses values left over from the example, and fails fast
with a :class:`ConfigError` naming the dotted key. Environment variables override keys:
``BRIDGE_<SECTION>__<KEY>[__<SUBKEY>...]`` (upper-case, double underscore between levels), the
value parsed as a YAML scalar, e.g. ``BRIDGE_APPSERVICE__PORT=29400`` or
``BRIDGE_APPSERVICE__HS_TOKEN=...``.

Each section is a msgspec ``Struct``: the declaration is the decoder (types, defaults, bounds,
unknown keys refused), as for the outbox actions, so a key is declared once and cannot drift
from its parsing; msgspec's messages are rephrased in the style above, with the closest known
key suggested for an unknown one. Checks beyond types (formats, ranges that depend on other
keys) follow the decoding, each naming its key. Over 400 lines because the whole shape of the
file and its checks read best together.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, get_args, get_type_hints

import msgspec
import yaml
from msgspec.structs import replace

ENV_PREFIX = "BRIDGE_"
#: Token values that mean "not generated yet"; `bridge generate-registration` replaces them.
TOKEN_PLACEHOLDERS = frozenset({"", "generate", "change_me", "changeme"})
PERMISSION_LEVELS = ("block", "user", "admin")
#: What a process does: ``intake`` serves HTTP and writes the inbox and outbox, ``worker``
#: processes the inbox and sends the outbox, ``all`` does both.
ROLES = ("all", "intake", "worker")
#: HS256 needs a secret at least as long as its hash (RFC 7518, section 3.2).
MIN_HS256_SECRET_BYTES = 32
#: The most clock skew tolerated on a token's times: more makes expiry meaningless.
MAX_JWT_LEEWAY = 300
# All matched with fullmatch: "$" would also match before a trailing newline.
_ORIGIN_RE = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
_LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+")
_MXC_RE = re.compile(r"mxc://[A-Za-z0-9.\-:\[\]]+/[A-Za-z0-9_\-]+")
_SERVER_NAME_RE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")

#: Where a config file's relative paths are resolved (None: the working directory).
_Base = Path | None


class ConfigError(ValueError):
    """A configuration problem, naming the dotted key it concerns."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}")
        self.key = key
        self.problem = problem


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A mapping of the config file: its keys are the fields; any other key is refused."""


#: Numbers that must be more than 0.
Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class HomeserverConfig(_Section, frozen=True, kw_only=True):
    address: str
    domain: str
    verify_ssl: bool = True


class InboxConfig(_Section, frozen=True, kw_only=True):
    workers: Positive = 4
    batch_size: Positive = 100
    lanes_per_claim: Positive = 16
    max_backlog: int = 20_000
    max_hold: float = 30.0
    keep_days: float = 7.0
    max_attempts: Positive = 3
    retry_delay: PositiveFloat = 1.0
    poll_interval: PositiveFloat = 2.0
    #: Whether a processing batch's commit waits for the disk (see InboxProcessor).
    synchronous_commit: bool = True


class OutboxConfig(_Section, frozen=True, kw_only=True):
    workers: Positive = 4
    batch_size: Positive = 20
    max_attempts: Positive = 12
    retry_delay: PositiveFloat = 2.0
    max_retry_delay: PositiveFloat = 300.0
    poll_interval: PositiveFloat = 2.0
    request_timeout: PositiveFloat = 60.0
    lease_seconds: PositiveFloat = 120.0


class TxnGapConfig(_Section, frozen=True, kw_only=True):
    """Watching the homeserver's integer transaction ids for one it never sent."""

    enabled: bool = True
    grace: PositiveFloat = 60.0
    check_interval: PositiveFloat = 5.0


class AppserviceConfig(_Section, frozen=True, kw_only=True):
    address: str
    hostname: str = "127.0.0.1"
    port: int
    id: str
    bot_username: str
    bot_displayname: str = "Network bridge bot"
    bot_avatar: str | None = None
    # Placeholders until `bridge generate-registration` replaces them (then refused by run).
    as_token: str = "generate"  # noqa: S105
    hs_token: str = "generate"  # noqa: S105
    database: str = "embedded"
    embedded_data_dir: Path = Path("data/postgres")
    database_pool_min: int = 2
    database_pool_max: int = 20
    ephemeral_events: bool = True
    max_body_size: Positive = 32 * 1024 * 1024
    role: str = "all"
    reuse_port: bool = False
    listen_notify: bool = True
    #: The nice value (0-19) of a ``worker`` process and its local database sessions (0: as
    #: started).
    worker_nice: int = 0
    inbox: InboxConfig = InboxConfig()
    outbox: OutboxConfig = OutboxConfig()
    transaction_gaps: TxnGapConfig = TxnGapConfig()

    @property
    def uses_embedded_database(self) -> bool:
        return self.database == "embedded"

    @property
    def runs_intake(self) -> bool:
        """Serves the homeserver and the REST API, and writes the inbox and outbox."""
        return self.role in ("all", "intake")

    @property
    def runs_workers(self) -> bool:
        """Processes the inbox, sends the outbox, and runs the periodic jobs."""
        return self.role in ("all", "worker")


class BridgeSettings(_Section, frozen=True, kw_only=True):
    username_template: str = "_pn_{userid}"
    alias_template: str = "_pn_conv_{conversationid}"
    displayname_template: str = "{displayname}"
    protocol_id: str = "professional-network"
    permissions: dict[str, str] = {}


class JwtConfig(_Section, frozen=True, kw_only=True):
    algorithm: str = "HS256"
    secret: str | None = None
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    private_key_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: int = 30
    #: The bridge's own signing keys (the newest signs, the others still verify), generated
    #: on first start when ``private_key_file`` is unset; ``bridge keys rotate`` adds one.
    #: Default: ``data/signing-keys`` beside the config file.
    key_dir: Path | None = None
    keep_keys: Positive = 3


class TlsConfig(_Section, frozen=True, kw_only=True):
    """The optional TLS listener that requests client certificates (Symphony's certificate
    authentication, ``POST /sessionauth/v1/authenticate``)."""

    certificate: Path
    key: Path
    port: int
    #: Address to bind; None: ``appservice.hostname``.
    host: str | None = None
    #: Lifetime of the session tokens certificate authentication issues, in seconds.
    session_ttl: Positive = 3600


class ApiConfig(_Section, frozen=True, kw_only=True):
    enabled: bool = True
    token_name: str = "linkedin-access-token"  # noqa: S105 - a header name, not a secret
    jwt: JwtConfig = JwtConfig()
    #: The largest REST request body, refused with 413 before it is read.
    max_body_size: Positive = 1024 * 1024
    #: Origins (``scheme://host[:port]``) whose pages may send unsafe requests authenticated by
    #: the token cookie; other cookie-authenticated unsafe requests are refused.
    allowed_origins: tuple[str, ...] = ()
    tls: TlsConfig | None = None
    #: Whole lists (``pageNumber=0``) written at once (each holds a pooled connection); past: 503.
    whole_lists: Positive = 4


class CredentialsConfig(_Section, frozen=True, kw_only=True):
    #: AES-256-GCM keys (``<key id>:<base64 key>`` a line, the last one newest) that encrypt
    #: credential secrets; the environment variable named by ``key_env`` replaces the file.
    #: Default: ``credentials.key`` beside the config file.
    key_file: Path | None = None
    key_env: str = "BRIDGE_CREDENTIALS_KEYS"
    #: Network users whose credentials act with administrator rights.
    admin_accounts: tuple[str, ...] = ()
    #: Lifetime of the tokens ``POST /auth-api/token`` issues, in seconds.
    token_ttl: Positive = 3600


class LoggingConfig(_Section, frozen=True, kw_only=True):
    level: str = "INFO"
    format: str = "text"


class MetricsConfig(_Section, frozen=True, kw_only=True):
    enabled: bool = False
    #: ``host:port`` of the metrics listener (``[v6]:port`` for an IPv6 address).
    listen: str = "127.0.0.1:9464"

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class AdminConfig(_Section, frozen=True, kw_only=True):
    enabled: bool = True
    link_ttl: PositiveFloat = 600.0
    session_ttl: PositiveFloat = 43200.0


class Config(_Section, frozen=True, kw_only=True):
    homeserver: HomeserverConfig
    appservice: AppserviceConfig
    bridge: BridgeSettings
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    admin: AdminConfig = AdminConfig()
    credentials: CredentialsConfig = CredentialsConfig()

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


# --- decoding: types, required and unknown keys -----------------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]*)`")
_TYPE = re.compile(r"Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`")
_BOUND = re.compile(r"Expected `(?P<kind>int|float)` (?P<bound>[<>]=? \S+)")
_POSITIVE_BOUNDS = frozenset({">= 1", "> 0", "> 0.0"})


def _section_type(path: list[str]) -> type[_Section] | None:
    """The section type at a dotted path (None where the path leads to no section)."""
    node: type[_Section] = Config
    for name in path:
        hint = get_type_hints(node).get(name)
        if not (isinstance(hint, type) and issubclass(hint, _Section)):
            return None
        node = hint
    return node


def _problem(message: str, path: list[str]) -> tuple[str, str]:
    """(dotted key, problem) for one of msgspec's validation messages."""
    if found := _UNKNOWN.fullmatch(message):
        name = found["name"]
        section = _section_type(path)
        known = [f.name for f in msgspec.structs.fields(section)] if section else []
        close = get_close_matches(name, known, n=1)
        hint = f"; did you mean {'.'.join([*path, close[0]])!r}?" if close else ""
        return ".".join([*path, name]), f"unknown key{hint}"
    if found := _MISSING.fullmatch(message):
        key = [*path, found["name"]]
        return ".".join(key), "missing section" if _section_type(key) else "required"
    dotted = ".".join(path) or "(file)"
    if found := _TYPE.fullmatch(message):
        expected, got = found["expected"], found["got"]
        if expected == "object":
            return dotted, "must be a mapping"
        if expected == "int" and got == "bool":
            return dotted, "must be an integer, got bool"
        return dotted, f"must be {expected}, got {got}"
    if found := _BOUND.fullmatch(message):
        bound = found["bound"]
        return dotted, "must be positive" if bound in _POSITIVE_BOUNDS else f"must be {bound}"
    return dotted, message


def _without_nulls(data: Mapping[str, Any], section: type[_Section]) -> dict[str, Any]:
    """The mapping without null values (a key left empty means its default), section by
    section; a null inside another value (a permission's level) stays, to be refused."""
    hints = get_type_hints(section)
    result: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            continue
        hint = _section_of(hints.get(name))
        if isinstance(value, Mapping) and hint is not None:
            value = _without_nulls(value, hint)
            if not value and _optional(hints.get(name)):
                continue  # an optional section left empty is absent
        result[name] = value
    return result


def _section_of(hint: Any) -> type[_Section] | None:
    """The section type of a field's type hint (``Section`` or ``Section | None``)."""
    for kind in get_args(hint) or (hint,):
        if isinstance(kind, type) and issubclass(kind, _Section):
            return kind
    return None


def _optional(hint: Any) -> bool:
    return type(None) in get_args(hint)


def _decode(data: Mapping[str, Any], base: _Base) -> Config:
    def paths(kind: type, value: Any) -> Any:
        if kind is Path:
            if not isinstance(value, str):
                raise TypeError(f"Expected `str`, got `{type(value).__name__}`")
            return _resolve_path(base, value)
        raise NotImplementedError

    try:
        return msgspec.convert(_without_nulls(data, Config), Config, dec_hook=paths)
    except msgspec.ValidationError as exc:
        found = _AT.fullmatch(str(exc))
        assert found is not None  # the pattern matches any text
        path = (found["path"] or "").replace("[...]", "")
        key, problem = _problem(found["message"], [p for p in path.split(".") if p])
        raise ConfigError(key, problem) from None


# --- checks beyond types ------------------------------------------------------------------------


def _check_url(key: str, value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(key, f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _check_template(key: str, value: str, placeholder: str) -> None:
    if value.count(placeholder) != 1:
        raise ConfigError(key, f"must contain {placeholder} exactly once")
    if not _LOCALPART_RE.fullmatch(value.replace(placeholder, "x")):
        raise ConfigError(key, "may only contain a-z, 0-9 and ._=-/+ around the placeholder")


def _resolve_path(base: _Base, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _checked_homeserver(hs: HomeserverConfig) -> HomeserverConfig:
    if not _SERVER_NAME_RE.fullmatch(hs.domain):
        raise ConfigError("homeserver.domain", f"not a valid server name: {hs.domain!r}")
    return replace(hs, address=_check_url("homeserver.address", hs.address))


def _check_inbox(ib: InboxConfig) -> None:
    if ib.max_backlog < 0:
        raise ConfigError(
            "appservice.inbox.max_backlog", "must be 0 (no limit) or a positive number"
        )
    if ib.keep_days < 0:
        raise ConfigError("appservice.inbox.keep_days", "must be 0 (keep forever) or more")
    if not 0 < ib.max_hold <= 50:
        raise ConfigError(
            "appservice.inbox.max_hold",
            "must be more than 0 and at most 50 (the homeserver waits 60 s)",
        )


def _checked_appservice(asr: AppserviceConfig) -> AppserviceConfig:
    if not 0 < asr.port < 65536:
        raise ConfigError("appservice.port", "must be between 1 and 65535")
    if asr.database != "embedded" and not re.match(r"^postgres(ql)?://", asr.database):
        raise ConfigError("appservice.database", "must be 'embedded' or a postgres:// URL")
    if not _LOCALPART_RE.fullmatch(asr.bot_username):
        raise ConfigError("appservice.bot_username", "not a valid Matrix localpart")
    if asr.bot_avatar is not None and not _MXC_RE.fullmatch(asr.bot_avatar):
        raise ConfigError("appservice.bot_avatar", "must be an mxc://<server>/<media id> URL")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", asr.id):
        raise ConfigError("appservice.id", "may only contain letters, digits and _.-")
    if asr.database_pool_min < 1 or asr.database_pool_max < asr.database_pool_min:
        raise ConfigError("appservice.database_pool_max", "must be >= database_pool_min >= 1")
    if asr.role not in ROLES:
        raise ConfigError("appservice.role", f"must be one of {', '.join(ROLES)}")
    _check_inbox(asr.inbox)
    if not 0 <= asr.worker_nice <= 19:
        raise ConfigError("appservice.worker_nice", "must be a nice value from 0 to 19")
    if asr.outbox.lease_seconds <= asr.outbox.request_timeout:
        # A sender renews its lease before each request; one request must fit in a lease.
        raise ConfigError("appservice.outbox.lease_seconds", "must be more than request_timeout")
    # Every inbox and outbox worker holds a connection while it works; requests need some too.
    if asr.runs_workers:
        needed = asr.inbox.workers + asr.outbox.workers + 2
        if asr.database_pool_max < needed:
            raise ConfigError(
                "appservice.database_pool_max",
                f"must be at least inbox.workers + outbox.workers + 2 = {needed}",
            )
    elif asr.database_pool_max < 2:
        raise ConfigError("appservice.database_pool_max", "must be at least 2")
    return replace(asr, address=_check_url("appservice.address", asr.address))


def _check_bridge(br: BridgeSettings) -> None:
    for who, level in br.permissions.items():
        key = f"bridge.permissions.{who}"
        if level not in PERMISSION_LEVELS:
            raise ConfigError(key, f"level must be one of {', '.join(PERMISSION_LEVELS)}")
        if who != "*" and not (who.startswith("@") or _SERVER_NAME_RE.fullmatch(who)):
            raise ConfigError(key, "must be '*', a server name or an MXID")
    if not re.fullmatch(r"[a-z0-9_.\-]+", br.protocol_id):
        raise ConfigError("bridge.protocol_id", "may only contain a-z, 0-9 and _.-")
    _check_template("bridge.username_template", br.username_template, "{userid}")
    _check_template("bridge.alias_template", br.alias_template, "{conversationid}")


def _checked_api(api: ApiConfig) -> ApiConfig:
    jwt = api.jwt
    if jwt.algorithm not in ("HS256", "RS256"):
        raise ConfigError("api.jwt.algorithm", "must be HS256 or RS256")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", api.token_name):
        raise ConfigError("api.token_name", "must be a header/cookie name")
    if (
        jwt.algorithm == "HS256"
        and jwt.secret
        and len(jwt.secret.encode()) < MIN_HS256_SECRET_BYTES
    ):
        raise ConfigError(
            "api.jwt.secret", f"must be at least {MIN_HS256_SECRET_BYTES} bytes for HS256"
        )
    if not 0 <= jwt.leeway <= MAX_JWT_LEEWAY:
        raise ConfigError("api.jwt.leeway", f"must be between 0 and {MAX_JWT_LEEWAY} seconds")
    for i, origin in enumerate(api.allowed_origins):
        if not _ORIGIN_RE.fullmatch(origin):
            raise ConfigError(
                f"api.allowed_origins[{i}]",
                "must be an origin: scheme://host[:port], no path or trailing slash",
            )
    if api.tls is not None and not 0 < api.tls.port < 65536:
        raise ConfigError("api.tls.port", "must be a TCP port (1-65535)")
    return replace(api, allowed_origins=tuple(o.lower() for o in api.allowed_origins))


def _checked_credentials(cr: CredentialsConfig) -> CredentialsConfig:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cr.key_env):
        raise ConfigError("credentials.key_env", "must be an environment variable name")
    for i, account in enumerate(cr.admin_accounts):
        try:
            if str(uuid.UUID(account)) != account.lower():
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"credentials.admin_accounts[{i}]", "must be a network user id"
            ) from None
    return replace(cr, admin_accounts=tuple(a.lower() for a in cr.admin_accounts))


def _with_files_beside(config: Config, base: _Base) -> Config:
    """Default files beside the config file (none when the config has no file, as in tests)."""
    if base is None:
        return config
    jwt, credentials = config.api.jwt, config.credentials
    if jwt.key_dir is None:
        jwt = replace(jwt, key_dir=_resolve_path(base, "data/signing-keys"))
    if credentials.key_file is None:
        credentials = replace(credentials, key_file=_resolve_path(base, "credentials.key"))
    return replace(config, api=replace(config.api, jwt=jwt), credentials=credentials)


def _check_metrics(metrics: MetricsConfig) -> None:
    host, sep, port = metrics.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("metrics.listen", f"must be host:port, got {metrics.listen!r}")


def with_metrics_listen(config: Config, listen: str) -> Config:
    """``config`` serving metrics on ``listen`` (``host:port``; ``bridge run
    --metrics-listen``), enabled."""
    metrics = replace(config.metrics, enabled=True, listen=listen)
    _check_metrics(metrics)
    return replace(config, metrics=metrics)


def _checked_logging(lg: LoggingConfig) -> LoggingConfig:
    level = lg.level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("logging.level", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if lg.format not in ("text", "json"):
        raise ConfigError("logging.format", "must be text or json")
    return replace(lg, level=level)


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
    """Build a :class:`Config` from a raw mapping (already with env overrides applied).

    Relative paths in it are resolved against the directory of ``path``, the file it came from.
    """
    base = path.parent if path is not None else None
    config = _with_files_beside(_decode(data, base), base)
    _check_bridge(config.bridge)
    _check_metrics(config.metrics)
    return replace(
        config,
        homeserver=_checked_homeserver(config.homeserver),
        appservice=_checked_appservice(config.appservice),
        api=_checked_api(config.api),
        credentials=_checked_credentials(config.credentials),
        logging=_checked_logging(config.logging),
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
