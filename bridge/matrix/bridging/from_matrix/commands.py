"""Management-room commands; the bot answers each with an m.notice."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from ....errors import BridgeError
from ....ids import clean_text
from ....networking.models import RequestStatus
from ....users.models import NetworkUser
from ...inbox.events import Outcome
from ..context import BridgingContext

HELP_TEXT = """Commands:
  help                         this list
  whoami                       your network identity
  connect <user> [message]     ask a network user to connect (user: id or Matrix ghost)
  requests                     pending connection requests, sent and received
  accept <request id>          accept a request sent to you
  reject <request id>          reject a request sent to you
  cancel <request id>          withdraw a request you sent
  connections                  your connections
  disconnect <user>            remove a connection
  notifications                your latest notifications
  seen                         mark all notifications seen"""

Command = Callable[[asyncpg.Connection, NetworkUser, list[str]], Awaitable[str]]


class CommandError(Exception):
    pass


class CommandHandler:
    def __init__(self, ctx: BridgingContext) -> None:
        self.ctx = ctx
        self._commands: dict[str, Command] = {
            "help": self._help,
            "whoami": self._whoami,
            "connect": self._connect,
            "requests": self._requests,
            "accept": self._accept,
            "reject": self._reject,
            "cancel": self._cancel,
            "connections": self._connections,
            "disconnect": self._disconnect,
            "notifications": self._notifications,
            "seen": self._seen,
        }

    async def run(self, conn: asyncpg.Connection, room_id: str, user_id: str, body: str) -> Outcome:
        """Run one command line from the management room's owner and answer it."""
        line = clean_text(body, limit=2000, multiline=False).strip()
        if line.startswith("!"):
            line = line[1:]
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if not words:
            return Outcome.IGNORED
        name, args = words[0].lower(), words[1:]
        command = self._commands.get(name)
        if command is None:
            answer = f"Unknown command {name!r}. Send `help` for the list."
        elif not self.ctx.allowed(user_id):
            answer = "Your server is not allowed to use this bridge."
        else:
            user = await self.ctx.matrix_user(conn, user_id)
            try:
                async with conn.transaction():  # a refused command changes nothing
                    answer = await command(conn, user, args)
            except (BridgeError, CommandError) as exc:
                answer = f"{name}: {getattr(exc, 'message', None) or exc}"
        await self.ctx.notice(conn, room_id, answer)
        return Outcome.PROCESSED

    # --- argument parsing -----------------------------------------------------------------------

    def _user_arg(self, args: list[str], usage: str) -> uuid.UUID:
        if not args:
            raise CommandError(f"usage: {usage}")
        ghost = self.ctx.ids.network_user_of(args[0])
        if ghost is not None:
            return ghost
        try:
            return uuid.UUID(args[0])
        except ValueError:
            raise CommandError(f"{args[0]!r} is neither a network user id nor a ghost") from None

    def _request_arg(self, args: list[str], usage: str) -> uuid.UUID:
        if len(args) != 1:
            raise CommandError(f"usage: {usage}")
        try:
            return uuid.UUID(args[0])
        except ValueError:
            raise CommandError(f"{args[0]!r} is not a request id") from None

    async def _name(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> str:
        user = await self.ctx.users.find(conn, user_id)
        return f"{user.display_name} ({user_id})" if user else str(user_id)

    # --- commands -----------------------------------------------------------------------------

    async def _help(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        return HELP_TEXT

    async def _whoami(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        return f"You are {me.display_name}, network user {me.id}, linked to {me.matrix_user_id}."

    async def _connect(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        other = self._user_arg(args, "connect <user> [message]")
        if await self.ctx.users.find(conn, other) is None:
            raise CommandError(f"no network user {other}")
        message = " ".join(args[1:]) or None
        request, created = await self.ctx.networking.send_request(
            conn, me.id, other, message=message
        )
        if request.status is RequestStatus.ACCEPTED:
            name = await self._name(conn, other)
            return f"They had asked you already: you are now connected with {name}."
        if created:
            return f"Connection request {request.id} sent to {await self._name(conn, other)}."
        return f"Connection request {request.id} sent again ({request.request_counter} times)."

    async def _requests(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        pending = await self.ctx.networking.list_requests(
            conn, me.id, status=RequestStatus.PENDING, limit=50
        )
        if not pending:
            return "No pending connection requests."
        lines = []
        for r in pending:
            incoming = r.receiver_id == me.id
            other = await self._name(conn, r.sender_id if incoming else r.receiver_id)
            arrow = "from" if incoming else "to"
            note = f": {r.message}" if r.message else ""
            lines.append(f"{r.id} {arrow} {other}, sent {r.request_counter}x{note}")
        return "Pending connection requests:\n" + "\n".join(lines)

    async def _accept(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        request_id = self._request_arg(args, "accept <request id>")
        request = await self.ctx.networking.accept(conn, receiver=me.id, request_id=request_id)
        return f"Accepted: you are now connected with {await self._name(conn, request.sender_id)}."

    async def _reject(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        request_id = self._request_arg(args, "reject <request id>")
        await self.ctx.networking.reject(conn, receiver=me.id, request_id=request_id)
        return f"Rejected request {request_id}."

    async def _cancel(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        request_id = self._request_arg(args, "cancel <request id>")
        await self.ctx.networking.cancel(conn, sender=me.id, request_id=request_id)
        return f"Cancelled request {request_id}."

    async def _connections(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        connections = await self.ctx.networking.list_connections(conn, me.id, limit=100)
        if not connections:
            return "You have no connections yet."
        names = [await self._name(conn, c.other(me.id)) for c in connections]
        return "Your connections:\n" + "\n".join(names)

    async def _disconnect(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        other = self._user_arg(args, "disconnect <user>")
        await self.ctx.networking.disconnect(conn, me.id, other)
        return f"Disconnected from {await self._name(conn, other)}."

    async def _notifications(
        self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]
    ) -> str:
        items = await self.ctx.notifications.list(conn, me.id, limit=10)
        if not items:
            return "No notifications."
        lines = [
            f"{'  ' if n.seen_at else '* '}{n.created_at:%Y-%m-%d %H:%M} {n.title}: {n.body[:100]}"
            for n in items
        ]
        return "Latest notifications (* unseen):\n" + "\n".join(lines)

    async def _seen(self, conn: asyncpg.Connection, me: NetworkUser, args: list[str]) -> str:
        count = await self.ctx.notifications.mark_seen(conn, me.id)
        return f"Marked {count} notification(s) seen."
