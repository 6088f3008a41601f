"""The demo's scene, made the way people would make it: through a Matrix client and the
bridge's REST API, so every part of the bridge plays its part.

1. a Matrix user (``@demo:localhost``, with a password) and two network users;
2. the Matrix user's management room (a direct chat with the bridge bot);
3. a direct chat from the Matrix user to the first network user's ghost: a connection request,
   which the network user accepts over REST; the chat becomes their bridged conversation, with
   messages both ways;
4. a group conversation made over REST by the first network user with the other one and the
   Matrix user: its portal room, which the Matrix user joins, and a message in it;
5. a notification for the Matrix user (a notice in the management room).

Each phase waits (bounded) until its effect is visible on the other side.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mautrix.api import Method
from mautrix.api import Path as ApiPath
from mautrix.client import ClientAPI
from mautrix.errors import MatrixRequestError, MNotFound
from mautrix.types import EventType, MemberStateEventContent, RoomAlias, RoomID, UserID

from ..config import Config
from ..local.processes import wait_until
from ..local.synapse import register_user
from ..matrix.ids import MatrixIds
from .rest import DemoRest

MATRIX_LOCALPART = "demo"
#: Bound for one effect to show on the other side (a join, a message, a notice).
STEP_TIMEOUT = 60.0

NETWORK_USERS = ("Ann Example", "Ben Sample")
GROUP_TITLE = "Demo group"
NOTIFICATION_TITLE = "Welcome to the bridge demo"

#: The seeded direct conversation, in order: (from Matrix?, text).
DIRECT_MESSAGES = (
    (True, "Hi Ann! This message was sent from a Matrix client."),
    (False, "Hello from the network! I am writing through the bridge's REST API."),
    (True, "Great, so we can talk across both sides."),
    (False, "Exactly. Try replying from your Matrix client, or post with curl."),
)
GROUP_MESSAGE = "Welcome to the demo group, everyone."


@dataclass
class Scene:
    """What the seeding made; saved in the demo's state for later runs."""

    matrix_user: str
    matrix_password: str
    matrix_network_id: str
    network_users: list[dict[str, str]]
    management_room: str
    direct: dict[str, str]
    group: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "matrix_user": self.matrix_user,
            "matrix_password": self.matrix_password,
            "matrix_network_id": self.matrix_network_id,
            "network_users": self.network_users,
            "management_room": self.management_room,
            "direct": self.direct,
            "group": self.group,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scene:
        return cls(
            matrix_user=str(data["matrix_user"]),
            matrix_password=str(data["matrix_password"]),
            matrix_network_id=str(data["matrix_network_id"]),
            network_users=[
                {"id": str(u["id"]), "name": str(u["name"])} for u in data["network_users"]
            ],
            management_room=str(data["management_room"]),
            direct={k: str(v) for k, v in data["direct"].items()},
            group={k: str(v) for k, v in data["group"].items()},
        )


StepRunner = Callable[[str, Callable[[], Awaitable[None]]], Awaitable[None]]


class Seeder:
    """Makes the scene; each phase runs as one progress step (``run_step``)."""

    def __init__(
        self,
        config: Config,
        rest: DemoRest,
        *,
        homeserver_url: str,
        shared_secret: str,
    ) -> None:
        self._config = config
        self._rest = rest
        self._homeserver_url = homeserver_url
        self._shared_secret = shared_secret
        self._ids = MatrixIds(config)
        self._client: ClientAPI | None = None
        self._users: list[tuple[uuid.UUID, str, str]] = []  # id, name, token
        self._matrix_user = f"@{MATRIX_LOCALPART}:{config.homeserver.domain}"
        self._password = secrets.token_urlsafe(12)
        self._me: uuid.UUID | None = None
        self._management_room = ""
        self._direct: dict[str, str] = {}
        self._group: dict[str, str] = {}

    async def run(self, run_step: StepRunner) -> Scene:
        try:
            await run_step("Matrix user and network users created", self._users_step)
            await run_step("management room with the bridge bot", self._management_step)
            await run_step("connection accepted, direct chat bridged", self._connection_step)
            await run_step("direct messages sent both ways", self._messages_step)
            await run_step("group conversation with its portal room", self._group_step)
            await run_step("notification delivered to Matrix", self._notification_step)
        finally:
            if self._client is not None:
                await self._client.api.session.close()
        assert self._me is not None
        return Scene(
            matrix_user=self._matrix_user,
            matrix_password=self._password,
            matrix_network_id=str(self._me),
            network_users=[{"id": str(i), "name": n} for i, n, _ in self._users],
            management_room=self._management_room,
            direct=self._direct,
            group=self._group,
        )

    # ------------------------------------------------------------------------- the phases

    async def _users_step(self) -> None:
        registered = await register_user(
            self._homeserver_url, self._shared_secret, MATRIX_LOCALPART, self._password
        )
        self._client = ClientAPI(
            mxid=UserID(registered["user_id"]),
            base_url=self._homeserver_url,
            token=registered["access_token"],
        )
        for name in NETWORK_USERS:
            user_id = uuid.uuid4()
            token = self._rest.token(user_id, name)
            # A token's first use creates its user, named by the token's `name`.
            await self._rest.call("GET", "/messaging-api/v1/conversations", token)
            self._users.append((user_id, name, token))

    async def _management_step(self) -> None:
        client = self._matrix()
        bot = UserID(self._config.bot_mxid)
        room_id = await client.create_room(is_direct=True, invitees=[bot])
        await self._wait_member(room_id, bot, "join", "the bridge bot to join the management room")
        self._management_room = str(room_id)

    async def _connection_step(self) -> None:
        client = self._matrix()
        ann_id, ann_name, ann_token = self._users[0]
        ghost = UserID(self._ids.ghost(ann_id))
        room_id = await client.create_room(is_direct=True, invitees=[ghost])

        async def incoming() -> dict[str, Any] | None:
            found = await self._rest.call(
                "GET", "/networking-api/v1/connectionrequests", ann_token,
                params={"status": "pending"},
            )
            for request in found["connectionRequests"]:
                if str(request["receiverUserId"]) == str(ann_id):
                    return dict(request)
            return None

        request = await wait_until(
            incoming, within=STEP_TIMEOUT, what=f"the connection request to reach {ann_name}"
        )
        self._me = uuid.UUID(str(request["senderUserId"]))
        await self._rest.call(
            "PATCH", f"/networking-api/v1/connectionrequests/{request['id']}", ann_token,
            body={"status": "accepted"},
        )
        await self._wait_member(room_id, ghost, "join", f"{ann_name}'s ghost to join the chat")

        async def direct() -> str | None:
            found = await self._rest.call(
                "GET", "/messaging-api/v1/conversations", ann_token, params={"isGroup": "false"}
            )
            for conversation in found["conversations"]:
                if str(self._me) in conversation["participantIds"]:
                    return str(conversation["id"])
            return None

        conversation_id = await wait_until(
            direct, within=STEP_TIMEOUT, what="the direct conversation on the network"
        )
        self._direct = {"conversation_id": conversation_id, "room_id": str(room_id)}

    async def _messages_step(self) -> None:
        client = self._matrix()
        ann_id, _, ann_token = self._users[0]
        room_id = RoomID(self._direct["room_id"])
        conversation_id = self._direct["conversation_id"]
        for from_matrix, text in DIRECT_MESSAGES:
            if from_matrix:
                await client.send_text(room_id, text)
                await self._wait_rest_message(ann_token, conversation_id, text)
            else:
                await self._rest.call(
                    "POST", "/messaging-api/v1/messages", ann_token,
                    body={"conversationId": conversation_id, "content": text},
                )
                await self._wait_timeline(room_id, self._ids.ghost(ann_id), text)

    async def _group_step(self) -> None:
        client = self._matrix()
        (ann_id, _, ann_token), (ben_id, _, ben_token) = self._users[0], self._users[1]
        created = await self._rest.call(
            "POST", "/messaging-api/v1/conversations", ann_token,
            body={
                "isGroup": True,
                "participantIds": [str(ann_id), str(ben_id), str(self._me)],
                "title": GROUP_TITLE,
                "topic": "A group conversation made on the network, with its portal room",
            },
        )
        conversation_id = str(created["conversation"]["id"])
        alias = RoomAlias(self._ids.alias(uuid.UUID(conversation_id)))

        async def resolved() -> RoomID | None:
            try:
                return (await client.resolve_room_alias(alias)).room_id
            except MNotFound:
                return None

        room_id = await wait_until(resolved, within=STEP_TIMEOUT, what="the group's portal room")

        async def joined() -> bool:
            try:
                await client.join_room_by_id(room_id)
            except MatrixRequestError:  # not invited yet
                return False
            return True

        await wait_until(
            joined, within=STEP_TIMEOUT, what="the invite to the group's room", interval=0.25
        )
        await self._rest.call(
            "POST", "/messaging-api/v1/messages", ben_token,
            body={"conversationId": conversation_id, "content": GROUP_MESSAGE},
        )
        await self._wait_timeline(room_id, self._ids.ghost(ben_id), GROUP_MESSAGE)
        self._group = {"conversation_id": conversation_id, "room_id": str(room_id)}

    async def _notification_step(self) -> None:
        ann_id, ann_name, _ = self._users[0]
        # Sending notifications is for administrators: a short-lived admin token of Ann's.
        admin = self._rest.token(ann_id, ann_name, ttl=300, admin=True)
        await self._rest.call(
            "POST", "/notification-api/notifications", admin,
            body={"notification": {
                "userIds": [str(self._me)],
                "title": NOTIFICATION_TITLE,
                "body": "Notifications from the network arrive here, in your management room.",
            }},
        )
        await self._wait_timeline(
            RoomID(self._management_room), self._config.bot_mxid, NOTIFICATION_TITLE
        )

    # ------------------------------------------------------------------------- waiting

    def _matrix(self) -> ClientAPI:
        assert self._client is not None
        return self._client

    async def _wait_member(self, room_id: RoomID, user_id: str, membership: str, what: str) -> None:
        client = self._matrix()

        async def reached() -> bool:
            try:
                content = await client.get_state_event(room_id, EventType.ROOM_MEMBER, user_id)
            except (MNotFound, MatrixRequestError):
                return False
            return (
                isinstance(content, MemberStateEventContent)
                and content.membership.value == membership
            )

        await wait_until(reached, within=STEP_TIMEOUT, what=what, interval=0.25)

    async def _wait_timeline(self, room_id: RoomID, sender: str, text: str) -> None:
        client = self._matrix()

        async def seen() -> bool:
            page = await client.api.request(
                Method.GET, ApiPath.v3.rooms[room_id].messages,
                query_params={"dir": "b", "limit": "50"},
            )
            return any(
                event.get("sender") == sender and text in str(event.get("content", {}).get("body"))
                for event in page.get("chunk") or []
            )

        await wait_until(
            seen, within=STEP_TIMEOUT, what=f"{text!r} from {sender} in {room_id}", interval=0.25
        )

    async def _wait_rest_message(self, token: str, conversation_id: str, text: str) -> None:
        async def seen() -> bool:
            found = await self._rest.call(
                "GET", "/messaging-api/v1/messages", token,
                params={"conversationId": conversation_id, "pageRowCount": "100"},
            )
            return any(m["content"] == text for m in found["messages"])

        await wait_until(
            seen, within=STEP_TIMEOUT, what=f"{text!r} on the network side", interval=0.25
        )
