"""Acting on Matrix as the bridge bot or a ghost, through mautrix's IntentAPI.

The outbox retries durably, so nothing here retries by itself: mautrix's own retry loop is off
(``default_retry_count=0``), and the intents trust the homeserver instead of a local cache of
room state (membership and power levels are the homeserver's to judge; a refusal comes back as
an error the outbox deals with). Only registration is remembered, per process.

Over 400 lines because mautrix needs two adapters beside the one method per action: a state
store that answers from no cache (:class:`HomeserverStateStore`, twenty small methods) and an
HTTP client that keeps what a 429 says.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from aiohttp import ClientResponse, ClientSession
from mautrix.api import HTTPAPI, Method, Path
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.appservice.api.appservice import ChildAppServiceAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.errors import IntentError, MatrixRequestError, MForbidden, MRoomInUse
from mautrix.errors.request import make_request_error
from mautrix.types import (
    JSON,
    EventType,
    Member,
    Membership,
    MemberStateEventContent,
    PowerLevelStateEventContent,
    RoomAlias,
    RoomCreatePreset,
    RoomEncryptionStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)
from mautrix.util.logging import TraceLogger
from yarl import URL

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Set on a :class:`MatrixRequestError` when the homeserver said how long to wait.
RETRY_AFTER_ATTR = "retry_after_ms"

# IntentAPI wraps these methods to join the room first; the outbox sends joins explicitly and
# recovers from "not in the room" itself (see Intents._as_member).
_NO_AUTO_JOIN: dict[str, Any] = {"ensure_joined": False}


def retry_after_ms(exc: BaseException) -> int | None:
    """The wait the homeserver asked for with a 429 (or 503), if it said."""
    value = getattr(exc, RETRY_AFTER_ATTR, None)
    return value if isinstance(value, int) else None


def _parse_retry_after(body: Mapping[str, Any], headers: Mapping[str, str]) -> int | None:
    value = body.get("retry_after_ms")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    header = headers.get("Retry-After", "")
    if header.isdigit():
        return int(header) * 1000
    return None


class _DetailedErrors(HTTPAPI):
    """mautrix's ``_send``, keeping what a 429 says about when to come back.

    mautrix 0.21 drops the response body of a standard error, and with it ``retry_after_ms``.
    """

    async def _send(
        self,
        method: Method,
        url: URL,
        content: Any,
        query_params: dict[str, str],
        headers: dict[str, str],
    ) -> tuple[JSON, ClientResponse]:
        request = self.session.request(
            str(method), url, data=content, params=query_params, headers=headers
        )
        async with request as response:
            if 200 <= response.status < 300:
                return await response.json(), response
            text = await response.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
            errcode, message = body.get("errcode"), body.get("error")
            unstable = body.get("org.matrix.msc3848.unstable.errcode")
            error = make_request_error(
                http_status=response.status,
                text=text,
                errcode=errcode if isinstance(errcode, str) else None,
                message=message if isinstance(message, str) else None,
                unstable_errcode=unstable if isinstance(unstable, str) else None,
            )
            wait = _parse_retry_after(body, response.headers)
            if wait is not None:
                setattr(error, RETRY_AFTER_ATTR, wait)
            raise error


class _ChildAPI(_DetailedErrors, ChildAppServiceAPI):
    """The API of one ghost: asserts its identity with ``?user_id=``."""


class BridgeAppServiceAPI(_DetailedErrors, AppServiceAPI):
    """The appservice's API: ``as_token`` auth, no retry loop, 429 details kept."""

    def user(self, user: UserID) -> ChildAppServiceAPI:
        try:
            return self.children[user]
        except KeyError:
            child = _ChildAPI(user, self)
            self.children[user] = child
            return child


class HomeserverStateStore(ASStateStore):
    """A state store that caches nothing about rooms and lets the homeserver decide.

    IntentAPI checks power levels and membership against its state store before acting. The
    bridge does not feed room state into it, so any cache would go stale; answering "cached,
    allowed" skips those checks and their extra requests, and a refusal arrives as the
    homeserver's error. Registration is remembered per process (re-registering is harmless).
    """

    async def get_member(self, room_id: RoomID, user_id: UserID) -> Member | None:
        return None

    async def set_member(
        self, room_id: RoomID, user_id: UserID, member: Member | MemberStateEventContent
    ) -> None:
        return None

    async def set_membership(
        self, room_id: RoomID, user_id: UserID, membership: Membership
    ) -> None:
        return None

    async def get_member_profiles(
        self,
        room_id: RoomID,
        memberships: tuple[Membership, ...] = (Membership.JOIN, Membership.INVITE),
    ) -> dict[UserID, Member]:
        return {}

    async def set_members(
        self,
        room_id: RoomID,
        members: dict[UserID, Member | MemberStateEventContent],
        only_membership: Membership | None = None,
    ) -> None:
        return None

    async def has_full_member_list(self, room_id: RoomID) -> bool:
        return False

    async def has_power_levels_cached(self, room_id: RoomID) -> bool:
        return True

    async def get_power_levels(self, room_id: RoomID) -> PowerLevelStateEventContent | None:
        return None

    async def set_power_levels(self, room_id: RoomID, content: PowerLevelStateEventContent) -> None:
        return None

    async def has_create_cached(self, room_id: RoomID) -> bool:
        return True

    async def get_create(self, room_id: RoomID) -> StateEvent | None:
        return None

    async def set_create(self, event: StateEvent) -> None:
        return None

    async def has_encryption_info_cached(self, room_id: RoomID) -> bool:
        return True

    async def is_encrypted(self, room_id: RoomID) -> bool | None:
        return False

    async def get_encryption_info(self, room_id: RoomID) -> RoomEncryptionStateEventContent | None:
        return None

    async def set_encryption_info(
        self, room_id: RoomID, content: RoomEncryptionStateEventContent | dict[str, Any]
    ) -> None:
        return None

    async def has_power_level(
        self, room_id: RoomID, user_id: UserID, event_type: EventType
    ) -> bool | None:
        return True


@dataclass(frozen=True, slots=True)
class RoomSpec:
    """What a new room is created with."""

    name: str | None = None
    topic: str | None = None
    alias_localpart: str | None = None
    invite: list[str] = field(default_factory=list)
    is_direct: bool = False
    preset: str = RoomCreatePreset.PRIVATE.value
    power_levels: dict[str, Any] | None = None
    initial_state: list[dict[str, Any]] | None = None
    creation_content: dict[str, Any] | None = None
    room_version: str | None = None


class Intents:
    """The bridge bot's and the ghosts' Matrix actions; one method per action, no retries.

    Every method registers a ghost first (once per process; ``M_USER_IN_USE`` is fine).
    Errors are mautrix's: :class:`MatrixRequestError` (with ``retry_after_ms`` on a 429, see
    :func:`retry_after_ms`), :class:`mautrix.errors.MatrixConnectionError`, and so on.
    """

    def __init__(
        self,
        session: ClientSession,
        *,
        homeserver_url: str,
        as_token: str,
        bot_mxid: str,
    ) -> None:
        self._api = BridgeAppServiceAPI(
            base_url=homeserver_url,
            bot_mxid=UserID(bot_mxid),
            token=as_token,
            log=cast(TraceLogger, logging.getLogger("bridge.matrix.http")),
            state_store=HomeserverStateStore(),
            client_session=session,
            default_retry_count=0,
        )
        self._room_version: str | None = None

    @property
    def bot_mxid(self) -> str:
        return str(self._api.bot_mxid)

    def intent(self, user_id: str) -> IntentAPI:
        """The IntentAPI acting as ``user_id`` (the bot or a ghost)."""
        if user_id == self.bot_mxid:
            return cast(IntentAPI, self._api.bot_intent())
        return cast(IntentAPI, self._api.intent(UserID(user_id)))

    async def _ready(self, user_id: str) -> IntentAPI:
        intent = self.intent(user_id)
        await intent.ensure_registered()
        return intent

    async def _as_member(
        self, intent: IntentAPI, room_id: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``call``; if refused, join the room (invited by the bot if need be) and retry once.

        A ghost that never joined (its join was dead-lettered) or was removed by accident would
        otherwise lose everything it says. If joining fails too, the original refusal stands.
        """
        try:
            return await call()
        except MForbidden as refused:
            try:
                await intent.ensure_joined(RoomID(room_id), ignore_cache=True)
            except IntentError as exc:
                cause = exc.__cause__
                if isinstance(cause, MatrixRequestError) and (
                    cause.http_status == 429 or cause.http_status >= 500
                ):
                    raise cause from None
                raise refused from None
            log.info("%s was not in %s; joined and retrying", intent.mxid, room_id)
            return await call()

    async def send(
        self, user_id: str, room_id: str, event_type: str, content: dict[str, Any], txn_id: str
    ) -> str:
        """Send a message event; the same ``txn_id`` yields the same event, never a second."""
        intent = await self._ready(user_id)
        evt_type = EventType.find(event_type, t_class=EventType.Class.MESSAGE)
        event_id = await self._as_member(
            intent,
            room_id,
            lambda: intent.send_message_event(
                RoomID(room_id), evt_type, cast(Any, content), txn_id=txn_id, **_NO_AUTO_JOIN
            ),
        )
        return str(event_id)

    async def redact(
        self, user_id: str, room_id: str, event_id: str, reason: str | None, txn_id: str
    ) -> str:
        """Redact an event, idempotent by ``txn_id`` (mautrix's ``redact`` picks its own)."""
        intent = await self._ready(user_id)
        content: dict[str, Any] = {"reason": reason} if reason else {}
        path = Path.v3.rooms[room_id].redact[event_id][txn_id]

        async def call() -> Any:
            return await intent.api.request(Method.PUT, path, content, metrics_method="redact")

        resp = await self._as_member(intent, room_id, call)
        return str(resp["event_id"])

    async def set_state(
        self,
        user_id: str,
        room_id: str,
        event_type: str,
        state_key: str,
        content: dict[str, Any],
    ) -> str:
        """Set a state event (idempotent: the same state again changes nothing)."""
        intent = await self._ready(user_id)
        evt_type = EventType.find(event_type, t_class=EventType.Class.STATE)
        event_id = await self._as_member(
            intent,
            room_id,
            lambda: intent.send_state_event(
                RoomID(room_id), evt_type, content, state_key=state_key, **_NO_AUTO_JOIN
            ),
        )
        return str(event_id)

    async def invite(self, user_id: str, room_id: str, invitee: str, reason: str | None) -> None:
        """Invite ``invitee``; one already in the room counts as done."""
        intent = await self._ready(user_id)
        await self._as_member(
            intent,
            room_id,
            lambda: intent.invite_user(
                RoomID(room_id), UserID(invitee), reason=reason, **_NO_AUTO_JOIN
            ),
        )

    async def join(self, user_id: str, room_id: str) -> str:
        """Join a room by id (accepting an invite); return the room id."""
        intent = await self._ready(user_id)
        return str(await intent.join_room_by_id(RoomID(room_id)))

    async def leave(self, user_id: str, room_id: str, reason: str | None) -> None:
        """Leave a room or decline an invite; not being in the room counts as done."""
        intent = await self._ready(user_id)
        await intent.leave_room(RoomID(room_id), reason=reason)

    async def kick(self, user_id: str, room_id: str, target: str, reason: str | None) -> None:
        """Remove ``target`` from the room."""
        intent = await self._ready(user_id)
        await self._as_member(
            intent,
            room_id,
            lambda: intent.kick_user(RoomID(room_id), UserID(target), reason=reason or ""),
        )

    async def set_profile(self, user_id: str, profile: Mapping[str, str | None]) -> None:
        """Set the user's own display name and/or avatar (only the keys given; None clears).

        Unchanged values are not set again: a profile change is copied into every room.
        """
        intent = await self._ready(user_id)
        if "displayname" in profile:
            await intent.set_displayname(profile["displayname"])
        if "avatar_url" in profile:
            await intent.set_avatar_url(cast(Any, profile["avatar_url"]))

    async def create_room(self, user_id: str, spec: RoomSpec) -> str:
        """Create a room; return its id.

        If the alias is taken, the room behind it is taken to be this one, created by an
        earlier attempt whose outcome was lost (aliases in the bridge's namespace are the
        bridge's alone).
        """
        intent = await self._ready(user_id)
        power_levels = await self._power_levels_for(intent, user_id, spec)
        # mautrix's state-store update iterates these if passed at all, even as None.
        optional: dict[str, Any] = {}
        if spec.initial_state:
            optional["initial_state"] = spec.initial_state
        try:
            room_id = await intent.create_room(
                alias_localpart=spec.alias_localpart,
                preset=RoomCreatePreset(spec.preset),
                name=spec.name,
                topic=spec.topic,
                is_direct=spec.is_direct,
                invitees=[UserID(u) for u in spec.invite],
                room_version=cast(Any, spec.room_version),
                creation_content=spec.creation_content,
                power_level_override=power_levels,
                **optional,
            )
        except MRoomInUse:
            if not spec.alias_localpart:
                raise
            alias = RoomAlias(f"#{spec.alias_localpart}:{intent.domain}")
            room_id = (await intent.resolve_room_alias(alias)).room_id
            log.warning("Alias %s already existed; adopting its room %s", alias, room_id)
        return str(room_id)

    async def ping_homeserver(self, appservice_id: str) -> int:
        """Ask the homeserver to ping us back (``/appservice/{id}/ping``); the round trip in ms.

        A successful ping also makes Synapse retry at once the transactions it held back while
        it thought the bridge was down, instead of waiting out its back-off (up to 512 s).
        """
        intent = self.intent(self.bot_mxid)
        return int(await intent.appservice_ping(appservice_id, txn_id=f"bridge-start-{id(self)}"))

    async def _power_levels_for(
        self, intent: IntentAPI, creator: str, spec: RoomSpec
    ) -> dict[str, Any] | None:
        """The power-level override, fitted to the room version.

        From room version 12 the creator's power is implied and may not be listed (Synapse
        refuses the room); before it, an override's ``users`` replaces the whole map, so the
        creator must be listed at 100 or it loses its power.
        """
        if not spec.power_levels or "users" not in spec.power_levels:
            return spec.power_levels
        version = spec.room_version or await self._default_room_version(intent)
        users = {k: v for k, v in spec.power_levels["users"].items() if k != creator}
        if not creators_have_implicit_power(version):
            users[creator] = 100
        return {**spec.power_levels, "users": users}

    async def _default_room_version(self, intent: IntentAPI) -> str:
        if self._room_version is None:
            try:
                caps = await intent.api.request(Method.GET, Path.v3.capabilities)
                version = caps["capabilities"]["m.room_versions"]["default"]
                self._room_version = str(version)
            except (MatrixRequestError, KeyError, TypeError):
                self._room_version = "1"  # unknown: list the creator, which every version allows
        return self._room_version


def creators_have_implicit_power(room_version: str) -> bool:
    """Whether room creators have infinite, unlisted power (room version 12 and its draft)."""
    if room_version.isdigit():
        return int(room_version) >= 12
    return room_version.startswith("org.matrix.hydra.")
