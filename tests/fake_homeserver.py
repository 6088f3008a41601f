"""A fake homeserver: the client-server API an appservice uses, over real HTTP, recorded.

It records every call (method, path, query, JSON body, acting user, Authorization header,
status) and checks what Synapse checks of an appservice: the ``as_token``, that ``?user_id=``
names a registered user in the bridge's namespace, that bodies are JSON. Anything else it
notices (an unknown endpoint, a malformed body) goes to :attr:`FakeHomeserver.violations`.
It keeps rooms, members, events and aliases so behaviour can be asserted on the result, and
can be scripted to fail (:meth:`fail`) or to hold requests until released (:meth:`hold`).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CS = "/_matrix/client/v3"


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str  # percent-decoded
    query: dict[str, str]
    body: Any
    user_id: str  # the acting user: ?user_id=, or the bot
    authorization: str | None
    status: int | None = None  # None while in flight


CALL = web.RequestKey("call", Call)


@dataclass
class Event:
    event_id: str
    type: str
    sender: str
    content: dict[str, Any]
    state_key: str | None = None
    redacts: str | None = None
    redacted: bool = False


@dataclass
class Room:
    room_id: str
    creator: str
    join_rule: str = "invite"
    alias: str | None = None
    is_direct: bool = False
    members: dict[str, str] = field(default_factory=dict)  # user id -> membership
    events: list[Event] = field(default_factory=list)
    state: dict[tuple[str, str], Event] = field(default_factory=dict)

    def timeline(self, event_type: str | None = "m.room.message") -> list[Event]:
        """Non-state events of a type (all types if None), in order."""
        return [
            e
            for e in self.events
            if e.state_key is None and (event_type is None or e.type == event_type)
        ]


@dataclass
class _Failure:
    path_contains: str
    status: int
    errcode: str
    error: str
    method: str | None
    user_id: str | None
    times: int | None
    retry_after_ms: int | None


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.errcode, self.error, self.extra = status, errcode, error, extra

    def response(self) -> web.Response:
        return web.json_response(
            {"errcode": self.errcode, "error": self.error, **self.extra}, status=self.status
        )


class FakeHomeserver:
    """The fake; serve :meth:`app` with ``aiohttp_server`` and set :attr:`url`."""

    def __init__(
        self,
        *,
        as_token: str,
        domain: str = "localhost",
        bot_localpart: str = "_pn_bot",
        namespace_prefix: str = "_pn_",
        room_version: str = "12",
    ) -> None:
        self.room_version = room_version
        self.as_token = as_token
        self.domain = domain
        self.bot = f"@{bot_localpart}:{domain}"
        self.namespace_prefix = namespace_prefix
        self.url = ""
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.registered: set[str] = {self.bot}
        self.rooms: dict[str, Room] = {}
        self.aliases: dict[str, str] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self._txns: dict[tuple[str, str], dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._holds: list[tuple[str, asyncio.Event]] = []
        self._response_holds: list[tuple[str, asyncio.Event]] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    # --- scripting and inspection -------------------------------------------------------------

    def fail(
        self,
        path_contains: str,
        *,
        status: int,
        errcode: str,
        error: str = "scripted failure",
        times: int | None = 1,
        method: str | None = None,
        user_id: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """Answer the next ``times`` (None: every) matching requests with this error."""
        self._failures.append(
            _Failure(path_contains, status, errcode, error, method, user_id, times, retry_after_ms)
        )

    def hold(self, path_contains: str) -> asyncio.Event:
        """Hold matching requests (after recording them) until the returned event is set."""
        release = asyncio.Event()
        self._holds.append((path_contains, release))
        return release

    def hold_response(self, path_contains: str) -> asyncio.Event:
        """Handle matching requests, but hold their response until the returned event is set."""
        release = asyncio.Event()
        self._response_holds.append((path_contains, release))
        return release

    def add_room(
        self, members: list[str], *, invited: list[str] | None = None, join_rule: str = "invite"
    ) -> str:
        """A room that already exists, with joined ``members`` (the first is its creator)."""
        room = Room(f"!r{next(self._ids)}:{self.domain}", members[0], join_rule)
        self.rooms[room.room_id] = room
        for user in members:
            self._member(room, user, user, "join")
        for user in invited or []:
            self._member(room, members[0], user, "invite")
        return room.room_id

    def calls_to(self, fragment: str, method: str | None = None) -> list[Call]:
        """Recorded calls whose path contains ``fragment``."""
        return [
            c for c in self.calls if fragment in c.path and (method is None or c.method == method)
        ]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait (without polling) until ``predicate`` holds after some call arrived or ended."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    # --- the HTTP app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/_matrix/client/versions", self._versions)
        r.add_get(f"{CS}/account/whoami", self._whoami)
        r.add_get(f"{CS}/capabilities", self._capabilities)
        r.add_post(f"{CS}/register", self._register)
        r.add_post(f"{CS}/createRoom", self._create_room)
        r.add_get(f"{CS}/directory/room/{{alias}}", self._resolve_alias)
        r.add_put(f"{CS}/rooms/{{room_id}}/send/{{event_type}}/{{txn_id}}", self._send)
        r.add_put(f"{CS}/rooms/{{room_id}}/redact/{{event_id}}/{{txn_id}}", self._redact)
        r.add_put(f"{CS}/rooms/{{room_id}}/state/{{event_type}}/", self._state)
        r.add_put(f"{CS}/rooms/{{room_id}}/state/{{event_type}}/{{state_key}}", self._state)
        r.add_post(f"{CS}/rooms/{{room_id}}/invite", self._invite)
        r.add_post(f"{CS}/rooms/{{room_id}}/join", self._join)
        r.add_post(f"{CS}/join/{{room_id}}", self._join)
        r.add_post(f"{CS}/rooms/{{room_id}}/leave", self._leave)
        r.add_post(f"{CS}/rooms/{{room_id}}/kick", self._kick)
        r.add_get(f"{CS}/profile/{{user_id}}/{{field}}", self._get_profile)
        r.add_put(f"{CS}/profile/{{user_id}}/{{field}}", self._set_profile)
        return app

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        text = await request.text()
        body: Any = None
        bad_json = False
        if request.method in ("PUT", "POST"):
            try:
                body = json.loads(text or "null")
            except ValueError:
                bad_json = True
        user_id = request.query.get("user_id", self.bot)
        call = Call(
            request.method,
            request.path,
            dict(request.query),
            body,
            user_id,
            request.headers.get("Authorization"),
        )
        self.calls.append(call)
        await self._notify()
        try:
            for fragment, release in self._holds:
                if fragment in request.path:
                    await release.wait()
            self._check(request, call, bad_json)
            self._scripted(call)
            request[CALL] = call
            response = await handler(request)
        except MatrixError as exc:
            response = exc.response()
        except web.HTTPNotFound:
            self.violations.append(f"unexpected call {request.method} {request.path}")
            response = MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request").response()
        call.status = response.status
        await self._notify()
        for fragment, release in self._response_holds:
            if fragment in request.path:
                await release.wait()
        return response

    def _check(self, request: web.Request, call: Call, bad_json: bool) -> None:
        auth = call.authorization or ""
        if not auth.startswith("Bearer "):
            self.violations.append(f"no as_token on {call.method} {call.path}")
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
        if not hmac.compare_digest(auth.removeprefix("Bearer ").encode(), self.as_token.encode()):
            self.violations.append(f"wrong token on {call.method} {call.path}")
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unknown access token")
        if bad_json or (request.method in ("PUT", "POST") and not isinstance(call.body, dict)):
            self.violations.append(f"body of {call.method} {call.path} is not a JSON object")
            raise MatrixError(400, "M_NOT_JSON", "Content not JSON")
        if call.path == "/_matrix/client/versions":
            return
        if "user_id" not in call.query:
            self.violations.append(f"no user_id assertion on {call.method} {call.path}")
        if not self._in_namespace(call.user_id):
            self.violations.append(f"{call.user_id} is outside the namespace")
            raise MatrixError(403, "M_EXCLUSIVE", "Application service cannot masquerade")
        if call.user_id not in self.registered and not call.path.endswith("/register"):
            raise MatrixError(403, "M_FORBIDDEN", "Application service has not registered user")

    def _scripted(self, call: Call) -> None:
        for failure in self._failures:
            if failure.times == 0 or failure.path_contains not in call.path:
                continue
            if failure.method not in (None, call.method):
                continue
            if failure.user_id not in (None, call.user_id):
                continue
            if failure.times is not None:
                failure.times -= 1
            extra = (
                {} if failure.retry_after_ms is None else {"retry_after_ms": failure.retry_after_ms}
            )
            raise MatrixError(failure.status, failure.errcode, failure.error, **extra)

    def _in_namespace(self, user_id: str) -> bool:
        return user_id == self.bot or (
            user_id.startswith(f"@{self.namespace_prefix}") and user_id.endswith(f":{self.domain}")
        )

    # --- rooms --------------------------------------------------------------------------------

    def _room(self, request: web.Request) -> Room:
        room = self.rooms.get(request.match_info["room_id"])
        if room is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        return room

    def _require_joined(self, room: Room, user_id: str) -> None:
        if room.members.get(user_id) != "join":
            raise MatrixError(403, "M_FORBIDDEN", f"User {user_id} not in room {room.room_id}")

    def _event(self, room: Room, event: Event) -> Event:
        room.events.append(event)
        if event.state_key is not None:
            room.state[(event.type, event.state_key)] = event
        return event

    def _new_id(self) -> str:
        return f"$ev{next(self._ids)}"

    def _member(
        self, room: Room, sender: str, target: str, membership: str, reason: str | None = None
    ) -> None:
        room.members[target] = membership
        content: dict[str, Any] = {"membership": membership}
        if reason:
            content["reason"] = reason
        self._event(room, Event(self._new_id(), "m.room.member", sender, content, target))

    @staticmethod
    def _call(request: web.Request) -> Call:
        return request[CALL]

    def _idempotent(self, call: Call) -> dict[str, Any] | None:
        return self._txns.get((call.user_id, call.path))

    async def _versions(self, request: web.Request) -> web.Response:
        return web.json_response({"versions": ["v1.1", "v1.5", "v1.11"], "unstable_features": {}})

    async def _whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"user_id": self._call(request).user_id})

    async def _register(self, request: web.Request) -> web.Response:
        call = self._call(request)
        if call.body.get("type") != "m.login.application_service":
            self.violations.append(f"registration without appservice login type: {call.body}")
            raise MatrixError(401, "M_FORBIDDEN", "Wrong login type")
        user_id = f"@{call.body.get('username')}:{self.domain}"
        if call.user_id not in (self.bot, user_id):
            self.violations.append(f"register {user_id} asserted as {call.user_id}")
        if not self._in_namespace(user_id):
            raise MatrixError(400, "M_EXCLUSIVE", "User ID outside the namespace")
        if user_id in self.registered:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        self.registered.add(user_id)
        return web.json_response({"user_id": user_id})

    async def _capabilities(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "capabilities": {
                    "m.room_versions": {
                        "default": self.room_version,
                        "available": {"11": "stable", "12": "stable"},
                    }
                }
            }
        )

    async def _create_room(self, request: web.Request) -> web.Response:
        call = self._call(request)
        body: dict[str, Any] = call.body
        version = str(body.get("room_version") or self.room_version)
        users = (body.get("power_level_content_override") or {}).get("users") or {}
        # As Synapse: from v12 the creator's power is implied and must not be listed; before
        # it, an override replacing `users` without the creator strips the creator's power.
        if version.isdigit() and int(version) >= 12 and call.user_id in users:
            raise MatrixError(
                400, "M_BAD_JSON", f"Creator user {call.user_id} must not appear in content.users"
            )
        if (
            users
            and not (version.isdigit() and int(version) >= 12)
            and users.get(call.user_id) != 100
        ):
            self.violations.append(f"room v{version} created without its creator at power 100")
        alias = None
        if body.get("room_alias_name"):
            alias = f"#{body['room_alias_name']}:{self.domain}"
            if alias in self.aliases:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
        join_rule = "public" if body.get("preset") == "public_chat" else "invite"
        room = Room(
            f"!r{next(self._ids)}:{self.domain}",
            call.user_id,
            join_rule,
            alias,
            bool(body.get("is_direct")),
        )
        self.rooms[room.room_id] = room
        self._event(
            room,
            Event(self._new_id(), "m.room.create", call.user_id, {"creator": call.user_id}, ""),
        )
        self._member(room, call.user_id, call.user_id, "join")
        for key, event_type in (("name", "m.room.name"), ("topic", "m.room.topic")):
            if body.get(key):
                self._event(
                    room, Event(self._new_id(), event_type, call.user_id, {key: body[key]}, "")
                )
        for user_id in body.get("invite", []):
            self._member(room, call.user_id, user_id, "invite")
        if alias:
            self.aliases[alias] = room.room_id
        return web.json_response({"room_id": room.room_id})

    async def _resolve_alias(self, request: web.Request) -> web.Response:
        room_id = self.aliases.get(request.match_info["alias"])
        if room_id is None:
            raise MatrixError(404, "M_NOT_FOUND", "Room alias not found")
        return web.json_response({"room_id": room_id, "servers": [self.domain]})

    async def _send(self, request: web.Request) -> web.Response:
        call = self._call(request)
        if (done := self._idempotent(call)) is not None:
            return web.json_response(done)
        room = self._room(request)
        self._require_joined(room, call.user_id)
        event = self._event(
            room, Event(self._new_id(), request.match_info["event_type"], call.user_id, call.body)
        )
        self._txns[(call.user_id, call.path)] = result = {"event_id": event.event_id}
        return web.json_response(result)

    async def _redact(self, request: web.Request) -> web.Response:
        call = self._call(request)
        if (done := self._idempotent(call)) is not None:
            return web.json_response(done)
        room = self._room(request)
        self._require_joined(room, call.user_id)
        target_id = request.match_info["event_id"]
        target = next((e for e in room.events if e.event_id == target_id), None)
        if target is None:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        target.redacted = True
        event = self._event(
            room,
            Event(self._new_id(), "m.room.redaction", call.user_id, call.body, redacts=target_id),
        )
        self._txns[(call.user_id, call.path)] = result = {"event_id": event.event_id}
        return web.json_response(result)

    async def _state(self, request: web.Request) -> web.Response:
        call = self._call(request)
        room = self._room(request)
        self._require_joined(room, call.user_id)
        event_type = request.match_info["event_type"]
        state_key = request.match_info.get("state_key", "")
        current = room.state.get((event_type, state_key))
        if current is not None and current.content == call.body and current.sender == call.user_id:
            return web.json_response({"event_id": current.event_id})  # as Synapse: no-op
        event = self._event(
            room, Event(self._new_id(), event_type, call.user_id, call.body, state_key)
        )
        return web.json_response({"event_id": event.event_id})

    async def _invite(self, request: web.Request) -> web.Response:
        call = self._call(request)
        room = self._room(request)
        self._require_joined(room, call.user_id)
        invitee = call.body.get("user_id")
        if not isinstance(invitee, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing user_id")
        if room.members.get(invitee) == "join":
            raise MatrixError(403, "M_FORBIDDEN", f"{invitee} is already in the room.")
        self._member(room, call.user_id, invitee, "invite", call.body.get("reason"))
        return web.json_response({})

    async def _join(self, request: web.Request) -> web.Response:
        call = self._call(request)
        target = request.match_info["room_id"]
        room = self.rooms.get(self.aliases.get(target, target))
        if room is None:
            raise MatrixError(404, "M_NOT_FOUND", "No known servers")
        membership = room.members.get(call.user_id)
        if membership != "join":
            if membership != "invite" and room.join_rule != "public":
                raise MatrixError(403, "M_FORBIDDEN", "You are not invited to this room.")
            self._member(room, call.user_id, call.user_id, "join")
        return web.json_response({"room_id": room.room_id})

    async def _leave(self, request: web.Request) -> web.Response:
        call = self._call(request)
        room = self._room(request)
        if room.members.get(call.user_id) not in ("join", "invite"):
            raise MatrixError(403, "M_FORBIDDEN", f"User {call.user_id} not in room")
        self._member(room, call.user_id, call.user_id, "leave", call.body.get("reason"))
        return web.json_response({})

    async def _kick(self, request: web.Request) -> web.Response:
        call = self._call(request)
        room = self._room(request)
        self._require_joined(room, call.user_id)
        target = call.body.get("user_id")
        if room.members.get(target) not in ("join", "invite"):
            raise MatrixError(403, "M_FORBIDDEN", "The target user is not in the room")
        self._member(room, call.user_id, str(target), "leave", call.body.get("reason"))
        return web.json_response({})

    async def _get_profile(self, request: web.Request) -> web.Response:
        profile = self.profiles.get(request.match_info["user_id"], {})
        name = request.match_info["field"]
        return web.json_response({name: profile[name]} if name in profile else {})

    async def _set_profile(self, request: web.Request) -> web.Response:
        call = self._call(request)
        user_id, name = request.match_info["user_id"], request.match_info["field"]
        if user_id != call.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "Cannot set another user's profile")
        if name not in ("displayname", "avatar_url") or name not in call.body:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing {name}")
        self.profiles.setdefault(user_id, {})[name] = call.body[name]
        return web.json_response({})


async def serve_fake_homeserver(
    aiohttp_server: Any, as_token: str, **options: Any
) -> FakeHomeserver:
    """A recording fake homeserver (``options``: its other arguments) on a real port
    (``aiohttp_server``: pytest-aiohttp's fixture), its ``url`` set."""
    fake = FakeHomeserver(as_token=as_token, **options)
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake
