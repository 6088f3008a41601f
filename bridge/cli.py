"""Command line: ``bridge [run]``, setup, users, tokens, the demo and the operator commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from msgspec.structs import replace

from . import __version__
from .cli_credentials import add_parsers as add_credentials_parsers
from .cli_ops import add_parsers as add_ops_parsers
from .cli_token import add_parser as add_mint_token_parser
from .config import ROLES, Config, ConfigError, load_config, with_metrics_listen
from .db.embedded import EmbeddedPostgresError
from .db.schema import SchemaError, ensure_schema
from .demo.command import add_parser as add_demo_parser
from .errors import BridgeError
from .logs import setup_logging
from .registration import generate
from .serving import database_dsn, running_bridge
from .supervisor import Supervisor

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


async def serve(config: Config, *, migrate: bool) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly (workers, pool, embedded Postgres)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with database_dsn(config) as dsn:
        revision = await ensure_schema(dsn, migrate=migrate)
        log.info("Database schema at revision %s", revision)
        async with running_bridge(config, dsn):
            await stop.wait()


async def migrate_only(config: Config) -> str:
    async with database_dsn(config) as dsn:
        return await ensure_schema(dsn, migrate=True)


async def supervise(config: Config, path: Path, processes: int, *, migrate: bool) -> int:
    """Run ``processes`` children of the config's role, each on the config file at ``path``,
    on the (embedded) database until stopped."""
    async with database_dsn(config) as dsn:
        revision = await ensure_schema(dsn, migrate=migrate)
        log.info("Database schema at revision %s", revision)
        supervisor = Supervisor(
            path,
            config.appservice.role,
            processes,
            dsn,
            hand_down_dsn=config.appservice.uses_embedded_database,
            metrics=config.metrics,
        )
        return await supervisor.run()


def _cmd_run(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    if args.role is not None:
        environ["BRIDGE_APPSERVICE__ROLE"] = args.role
    config = load_config(args.config, environ)
    if args.metrics_listen is not None:
        config = with_metrics_listen(config, args.metrics_listen)
    config.require_tokens()
    setup_logging(config.logging)
    if args.processes > 1:
        return asyncio.run(
            supervise(config, args.config.resolve(), args.processes, migrate=not args.no_migrate)
        )
    asyncio.run(serve(config, migrate=not args.no_migrate))
    return 0


def _cmd_generate_registration(args: argparse.Namespace) -> int:
    generated = generate(args.config, args.registration, say=print)
    config = generated.config
    if generated.signing_key is not None:
        print(
            f"REST API tokens: signed with the bridge's own RS256 key {generated.signing_key} "
            "(`bridge mint-token` issues them)."
        )
    if generated.credentials_key is not None:
        print(f"Credential secrets: encrypted under the new key file {generated.credentials_key}.")
    print(f"Wrote {args.registration} for application service {config.appservice.id!r}.")
    print("Add it to the homeserver's app_service_config_files and restart the homeserver.")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(config.logging)
    revision = asyncio.run(migrate_only(config))
    print(f"Database schema at revision {revision}.")
    return 0


async def _users(config: Config, args: argparse.Namespace) -> list[str]:
    from .db.database import Database
    from .users.service import UserService
    from .users.store import UserStore

    async with database_dsn(config) as dsn:
        await ensure_schema(dsn, migrate=True)
        db = Database(dsn, min_size=1, max_size=1)
        users = UserService(db, UserStore())
        await db.open()
        try:
            if args.users_command == "add":
                user = await users.add(args.name, args.avatar)
                return [str(user.id)]
            return [
                f"{u.id}\t{u.display_name}\t{u.matrix_user_id or '-'}\t{u.avatar_url or '-'}"
                for u in await users.list_page(limit=args.limit)
            ]
        finally:
            await db.close()


def _cmd_users(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(replace(config.logging, level="WARNING"))
    for line in asyncio.run(_users(config, args)):
        print(line)
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.require_tokens()
    db = "embedded" if config.appservice.uses_embedded_database else "external"
    print(
        f"Config OK: {config.bot_mxid} on {config.homeserver.address}, "
        f"listening on {config.appservice.hostname}:{config.appservice.port}, {db} database."
    )
    return 0


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description=__doc__)
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("config.yaml"),
        help="config file (default: config.yaml)",
    )
    # Sub-commands take -c too; SUPPRESS keeps their default from hiding the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS, help="config file")
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", parents=[common], help="run the bridge (the default)")
    run.add_argument(
        "--no-migrate",
        action="store_true",
        help="refuse to start on an out-of-date schema instead of migrating it",
    )
    run.add_argument(
        "--role",
        choices=ROLES,
        help="what this process does (overrides appservice.role): all, intake (HTTP, writes "
        "the inbox and outbox) or worker (processes the inbox, sends the outbox)",
    )
    run.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="start N processes of the role sharing the port (SO_REUSEPORT) and keep them "
        "running (default 1: this process serves)",
    )
    run.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve metrics on HOST:PORT (overrides metrics.listen, turns metrics on): one "
        "port per process on a machine; with --processes N, the first of N consecutive ports",
    )
    run.set_defaults(func=_cmd_run)

    reg = sub.add_parser(
        "generate-registration",
        parents=[common],
        help="fill in missing tokens and write the homeserver's registration file",
    )
    reg.add_argument(
        "-r",
        "--registration",
        type=Path,
        default=Path("registration.yaml"),
        help="registration file to write (default: registration.yaml)",
    )
    reg.set_defaults(func=_cmd_generate_registration)

    mig = sub.add_parser("migrate", parents=[common], help="bring the database schema to head")
    mig.set_defaults(func=_cmd_migrate)

    chk = sub.add_parser("check-config", parents=[common], help="validate the config and exit")
    chk.set_defaults(func=_cmd_check_config)

    users = sub.add_parser("users", parents=[common], help="manage network users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", parents=[common], help="create a network user, print its id")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--avatar", help="avatar URL (mxc:// or https://)")
    add.set_defaults(func=_cmd_users)
    lst = users_sub.add_parser("list", parents=[common], help="list network users")
    lst.add_argument("--limit", type=int, default=1000)
    lst.set_defaults(func=_cmd_users)

    add_mint_token_parser(sub, common)
    add_credentials_parsers(sub, common)
    add_demo_parser(sub)
    add_ops_parsers(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "run"])
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BridgeError as exc:
        print(f"bridge: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except (SchemaError, EmbeddedPostgresError, OSError) as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
