"""Operator commands: ``doctor``, ``dead-letters``, ``admin-link``."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from .config import Config, load_config
from .db.database import Database
from .logs import setup_logging
from .ops.admin_auth import AdminAuth
from .ops.database import operator_database
from .ops.dead_letter_store import DeadLetter
from .ops.dead_letters import DeadLetters
from .ops.doctor import as_json, diagnose

_RELATIVE = re.compile(r"([0-9]{1,6})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> datetime:
    """``30m``, ``6h``, ``7d`` ago, or an ISO 8601 time (UTC when it names no zone)."""
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = relative.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since: {text!r} is neither like 30m, 6h, 7d nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _quiet(config: Config) -> None:
    setup_logging(replace(config.logging, level="WARNING"))


def _letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "source": letter.source,
        "event_id": letter.event_id,
        "room_id": letter.room_id,
        "txn_id": letter.txn_id,
        "error": letter.error,
        "attempts": letter.attempts,
        "created_at": letter.created_at.isoformat(),
        "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
        "current_state": letter.current_state,
        "payload": letter.payload,
    }


def _reason(letter: DeadLetter) -> str:
    lines = letter.error.strip().splitlines()
    return (lines[-1] if lines else "")[:120]


async def _dead_letters(config: Config, args: argparse.Namespace) -> int:
    async with operator_database(config) as opened:
        db = Database(opened.dsn, min_size=1, max_size=2)
        await db.open()
        try:
            letters = DeadLetters(db)
            return await _dead_letter_command(letters, args)
        finally:
            await db.close()


async def _dead_letter_command(letters: DeadLetters, args: argparse.Namespace) -> int:
    command = args.dead_letters_command
    if command == "list":
        listed = await letters.list_letters(
            since=args.since, limit=args.limit, waiting_only=not args.all
        )
        if args.json:
            print(json.dumps([_letter_json(x) for x in listed], indent=2))
        for x in [] if args.json else listed:
            status = "waiting" if x.replayed_at is None else f"replayed ({x.current_state})"
            print(
                f"{x.id}\t{x.created_at:%Y-%m-%d %H:%M:%S}\t{x.source}\t{status}\t"
                f"{x.event_id or '-'}\t{_reason(x)}"
            )
        return 0
    if command == "show":
        letter = await letters.get(args.id)
        if letter is None:
            print(f"bridge: no dead letter {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(_letter_json(letter), indent=2))
        return 0
    if command == "replay":
        if not args.all and not args.ids:
            print("bridge: name dead letter ids, or --all", file=sys.stderr)
            return 2
        results = await (letters.replay_all() if args.all else letters.replay(args.ids))
        for r in results:
            print(f"{r.letter_id}\t{r.outcome}" + (f"\t{r.detail}" if r.detail else ""))
        bad = {"not found", "refused"}
        return 1 if any(r.outcome in bad for r in results) else 0
    dropped = await letters.drop(args.ids)
    for letter_id in args.ids:
        print(f"{letter_id}\t{'dropped' if letter_id in dropped else 'not found'}")
    return 0 if len(dropped) == len(set(args.ids)) else 1


def cmd_dead_letters(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _quiet(config)
    return asyncio.run(_dead_letters(config, args))


async def _admin_link(config: Config) -> str:
    async with operator_database(config) as opened:
        db = Database(opened.dsn, min_size=1, max_size=1)
        await db.open()
        try:
            secret = await AdminAuth(db, config.admin).create_link_secret()
        finally:
            await db.close()
    return f"{config.appservice.address}/admin/login?token={secret}"


def cmd_admin_link(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _quiet(config)
    link = asyncio.run(_admin_link(config))
    print(link)
    minutes = config.admin.link_ttl / 60
    print(
        f"(one use, valid {minutes:g} min; opens an admin session in the browser)", file=sys.stderr
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    registration = args.registration or Path(args.config).parent / "registration.yaml"
    checks = diagnose(Path(args.config), registration)
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": as_json(checks)}, indent=2))
    else:
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
            if not c.ok and c.fix:
                print(f"     -> {c.fix}")
    return 0 if all(c.ok for c in checks) else 1


def _ids(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dead letter id")
    return int(text)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``doctor``, ``dead-letters`` and ``admin-link`` to the command line."""
    doctor = sub.add_parser(
        "doctor", parents=[common], help="check config, registration, homeserver and database"
    )
    doctor.add_argument(
        "-r",
        "--registration",
        type=Path,
        default=None,
        help="registration file (default: registration.yaml next to the config)",
    )
    doctor.add_argument("--json", action="store_true", help="print the results as JSON")
    doctor.set_defaults(func=cmd_doctor)

    link = sub.add_parser(
        "admin-link", parents=[common], help="print a one-time link to the /admin status page"
    )
    link.set_defaults(func=cmd_admin_link)

    dead = sub.add_parser(
        "dead-letters", parents=[common], help="list, replay or drop dead letters"
    )
    dead_sub = dead.add_subparsers(dest="dead_letters_command", required=True)
    lst = dead_sub.add_parser("list", parents=[common], help="newest first")
    lst.add_argument("--since", type=parse_since, help="30m, 6h, 7d or an ISO 8601 time")
    lst.add_argument("--all", action="store_true", help="include those already replayed")
    lst.add_argument("--limit", type=int, default=100)
    lst.add_argument("--json", action="store_true")
    show = dead_sub.add_parser("show", parents=[common], help="one dead letter in full (JSON)")
    show.add_argument("id", type=_ids)
    replay = dead_sub.add_parser(
        "replay", parents=[common], help="put events back in their queue (once)"
    )
    replay.add_argument("ids", type=_ids, nargs="*")
    replay.add_argument("--all", action="store_true", help="every dead letter not replayed yet")
    drop = dead_sub.add_parser("drop", parents=[common], help="delete dead letters for good")
    drop.add_argument("ids", type=_ids, nargs="+")
    for parser in (lst, show, replay, drop):
        parser.set_defaults(func=cmd_dead_letters)
