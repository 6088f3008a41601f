"""``bridge mint-token``: print a REST API token signed with the configured key.

HS256 tokens are signed with ``api.jwt.secret``; RS256 tokens with ``api.jwt.private_key_file``
(or the newest key of ``api.jwt.key_dir``), their ``kid`` the key's RFC 7638 thumbprint (what
``GET /auth-api/publickey`` serves). ``iss`` and ``aud`` default to the configured ones, so the
bridge accepts what it mints.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import jwt

from .api.keys import KeyFileError
from .api.signing_keys import SigningKeys
from .config import Config, ConfigError, load_config
from .ids import parse_uuid

DEFAULT_TTL = 3600


def mint_token(
    config: Config,
    subject: uuid.UUID,
    *,
    name: str | None = None,
    admin: bool = False,
    ttl: int = DEFAULT_TTL,
    audience: str | None = None,
    issuer: str | None = None,
    now: float | None = None,
) -> str:
    """A JWT for ``subject``, signed as ``api.jwt`` configures."""
    settings = config.api.jwt
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": str(subject), "iat": issued, "exp": issued + ttl}
    if name:
        claims["name"] = name
    if admin:
        claims["roles"] = ["admin"]
    if audience or settings.audience:
        claims["aud"] = audience or settings.audience
    if issuer or settings.issuer:
        claims["iss"] = issuer or settings.issuer
    if settings.algorithm == "HS256":
        if not settings.secret:
            raise ConfigError("api.jwt.secret", "required to mint HS256 tokens")
        return jwt.encode(claims, settings.secret, algorithm="HS256")
    try:
        signing = SigningKeys.load(settings.private_key_file, settings.key_dir)
    except KeyFileError as exc:
        raise ConfigError("api.jwt.private_key_file", str(exc)) from None
    if signing is None:
        raise ConfigError(
            "api.jwt.private_key_file", "required to mint RS256 tokens (or keys in key_dir)"
        )
    key = signing.current()
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def cmd_mint_token(args: argparse.Namespace) -> int:
    """Print a token for ``--sub`` (exit code 0)."""
    config = load_config(args.config)
    subject = parse_uuid(args.sub, "--sub")
    if args.ttl <= 0:
        raise ConfigError("--ttl", "must be a positive number of seconds")
    print(
        mint_token(
            config,
            subject,
            name=args.name,
            admin=args.admin,
            ttl=args.ttl,
            audience=args.aud,
            issuer=args.iss,
        )
    )
    return 0


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """Register ``mint-token`` on the CLI's sub-command parsers."""
    parser = subparsers.add_parser(
        "mint-token", parents=[common], help="print a REST API token for a network user"
    )
    parser.add_argument("--sub", required=True, help="the network user id (UUID)")
    parser.add_argument("--name", help="display name claim (the user is created/renamed to it)")
    parser.add_argument("--admin", action="store_true", help="grant the admin role")
    parser.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL, help=f"lifetime in seconds (default {DEFAULT_TTL})"
    )
    parser.add_argument("--aud", help="audience (default: api.jwt.audience)")
    parser.add_argument("--iss", help="issuer (default: api.jwt.issuer)")
    parser.set_defaults(func=cmd_mint_token)
    return parser
