"""``bridge credentials add|list|delete|rotate-key`` and ``bridge keys rotate``.

Credentials made here are ``Managed`` (made by the bridge's operator, not through the API); a
generated secret is printed once. ``rotate-key`` adds a new newest key to the key file (when the
keys come from the file; with the environment variable, add the key there first) and re-seals
every secret under it. ``keys rotate`` makes a new token-signing key, keeping the previous ones
trusted up to ``api.jwt.keep_keys``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import msgspec
from msgspec.structs import replace

from .api.signing_keys import rotate
from .config import Config, ConfigError, load_config
from .credentials.crypto import add_key
from .credentials.listing import MAX_LIMIT, ListParameters
from .credentials.models import CredentialConfig, CredentialCreate
from .credentials.service import Actor, rotate_key
from .credentials.setup import Credentials, build_credentials
from .db.database import Database
from .db.schema import ensure_schema
from .ids import parse_uuid
from .logs import setup_logging
from .serving import database_dsn
from .users.service import UserService
from .users.store import UserStore


@asynccontextmanager
async def _opened(config: Config) -> AsyncIterator[Credentials]:
    async with database_dsn(config) as dsn:
        await ensure_schema(dsn, migrate=True)
        db = Database(dsn, min_size=1, max_size=2)
        await db.open()
        try:
            yield build_credentials(config, db, UserService(db, UserStore()))
        finally:
            await db.close()


def _expires(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError("--expires", f"{value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise ConfigError("--expires", "give a time zone (e.g. 2027-01-01T00:00:00Z)")
    return moment


def _config_of(args: argparse.Namespace) -> CredentialConfig:
    raw: dict[str, str] = {"type": args.type}
    if args.type == "basic":
        if not args.username:
            raise ConfigError("--username", "required for a basic credential")
        raw |= {"username": args.username, "secret": _random_secret()}
    elif args.type == "oauth_client":
        raw["client_id"] = args.client_id or _random_secret()[:22]
    config: CredentialConfig = msgspec.convert(raw, CredentialConfig)
    return config


def _random_secret() -> str:
    return secrets.token_urlsafe(32)


async def _run(config: Config, args: argparse.Namespace) -> list[str]:
    if args.credentials_command == "rotate-key":
        return await _rotate_key(config)
    owner = parse_uuid(args.owner, "--owner")  # checked before the database is opened
    async with _opened(config) as credentials:
        service = credentials.service
        operator = Actor(owner, is_admin=True)
        if args.credentials_command == "add":
            body = CredentialCreate(
                name=args.name,
                fullname=args.fullname,
                config=_config_of(args),
                expires=_expires(args.expires),
            )
            credential, generated = await service.create(operator, owner, body, managed="Managed")
            secret = generated or {
                k: v for k, v in msgspec.to_builtins(body.config).items() if k == "secret"
            }
            lines = [f"id\t{credential.id}", f"name\t{credential.name}"]
            lines += [f"{field}\t{value}" for field, value in credential.public.items()]
            lines += [f"{field}\t{value}" for field, value in secret.items()]
            return [*lines, "(the secret is shown this once: it cannot be read back)"]
        if args.credentials_command == "delete":
            await service.delete(operator, owner, parse_uuid(args.id, "id"))
            return [f"deleted {args.id}"]
        found = await service.list_credentials(operator, owner, ListParameters(limit=MAX_LIMIT))
        return [
            "\t".join(
                (str(c.id), c.name, c.type, c.managed, c.expires.isoformat() if c.expires else "-")
            )
            for c in found
        ]


async def _rotate_key(config: Config) -> list[str]:
    lines = []
    async with _opened(config) as credentials:
        keys = credentials.keys
        if not keys.from_env:
            if config.credentials.key_file is None:
                raise ConfigError("credentials.key_file", "not set")
            lines.append(f"added key {add_key(config.credentials.key_file)}")
        keyring = keys.get()
        if keyring is None:
            raise ConfigError(keys.config_key, "no encryption key configured")
        moved = await rotate_key(credentials.service.db, credentials.service.store, keyring)
        lines.append(f"re-encrypted {moved} credential(s) under key {keyring.newest_kid}")
    return lines


def cmd_credentials(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(replace(config.logging, level="WARNING"))
    for line in asyncio.run(_run(config, args)):
        print(line)
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = config.api.jwt
    if settings.key_dir is None:
        raise ConfigError("api.jwt.key_dir", "required to keep the previous keys")
    kid, retired = rotate(settings.private_key_file, settings.key_dir, settings.keep_keys)
    print(f"new signing key {kid}")
    for path in retired:
        print(f"retired {path}")
    return 0


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Register ``credentials`` and ``keys`` on the CLI's sub-command parsers."""
    creds = subparsers.add_parser("credentials", parents=[common], help="manage credentials")
    sub = creds.add_subparsers(dest="credentials_command", required=True)
    add = sub.add_parser("add", parents=[common], help="create a credential, print its secret")
    add.add_argument("--owner", required=True, help="the account (network user id)")
    add.add_argument("--type", required=True, choices=("token", "basic", "oauth_client"))
    add.add_argument("--name", help="short name, [a-z0-9_-] (default: from --fullname or the id)")
    add.add_argument("--fullname", help="display name")
    add.add_argument("--expires", help="ISO 8601 time after which it authenticates nothing")
    add.add_argument("--username", help="basic: the username")
    add.add_argument("--client-id", help="oauth_client: the client id (default: generated)")
    lst = sub.add_parser("list", parents=[common], help="list an account's credentials")
    lst.add_argument("--owner", required=True, help="the account (network user id)")
    delete = sub.add_parser("delete", parents=[common], help="delete a credential")
    delete.add_argument("--owner", required=True, help="the account (network user id)")
    delete.add_argument("id", help="the credential id")
    sub.add_parser(
        "rotate-key", parents=[common], help="add a new encryption key and re-encrypt under it"
    )
    creds.set_defaults(func=cmd_credentials)
    for parser in sub.choices.values():
        parser.set_defaults(func=cmd_credentials)

    keys = subparsers.add_parser("keys", parents=[common], help="the bridge's token-signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate", parents=[common], help="new signing key; older ones still verify"
    ).set_defaults(func=cmd_keys_rotate)
