"""The homeserver's queries answered: ghosts registered and portals created synchronously.

``GET /users/{userId}`` and ``GET /rooms/{roomAlias}`` must not answer before the user or room
exists, so these act on Matrix directly rather than through the outbox. Concurrent queries for
the same id (in this process or another) are serialised by a Postgres advisory lock.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ...db.database import Database
from ...messaging.models import Conversation
from ..outbox.intents import Intents, RoomSpec
from .context import BridgingContext

log = logging.getLogger(__name__)

_QUERY_LOCK_CLASS = 0x717279  # "qry"
_LOOKUP_LIMIT = 20


class BridgeDirectory:
    def __init__(self, db: Database, ctx: BridgingContext, intents: Intents) -> None:
        self._db = db
        self._ctx = ctx
        self._intents = intents
        self._protocol = ctx.config.bridge.protocol_id

    @contextlib.asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[None]:
        # Transaction-scoped: released however the block ends, even if the task is cancelled.
        async with self._db.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _QUERY_LOCK_CLASS, key
            )
            yield

    async def query_user(self, user_id: str) -> bool:
        network_id = self._ctx.ids.network_user_of(user_id)
        if network_id is None:
            return False
        async with self._db.acquire() as conn:
            user = await self._ctx.users.find(conn, network_id)
        if user is None:
            return False
        async with self._locked(user_id):
            await self.ensure_ghost(network_id)
        return True

    async def ensure_ghost(self, network_id: uuid.UUID) -> str:
        """Register the ghost of a network user and set its profile; return its MXID."""
        user_id = self._ctx.ids.ghost(network_id)
        async with self._db.acquire() as conn:
            user = await self._ctx.users.get(conn, network_id)
            ghost = await self._ctx.portals.get_ghost(conn, user_id)
        displayname = self._ctx.config.bridge.displayname_template.replace(
            "{displayname}", user.display_name
        )
        # A ghost row without registered_at only has a profile queued in the outbox so far.
        known_name = known_avatar = None
        if ghost is not None and ghost.registered_at is not None:
            known_name, known_avatar = ghost.displayname, ghost.avatar_url
        profile: dict[str, str | None] = {}
        if known_name != displayname:
            profile["displayname"] = displayname
        avatar = user.avatar_url
        if avatar and avatar.startswith("mxc://") and known_avatar != avatar:
            profile["avatar_url"] = avatar
        await self._intents.set_profile(user_id, profile)  # registers the ghost first
        async with self._db.transaction() as conn:
            await self._ctx.portals.upsert_ghost(
                conn, user_id, network_id, displayname, user.avatar_url, registered=True
            )
        return user_id

    async def query_alias(self, alias: str) -> bool:
        conversation_id = self._ctx.ids.conversation_of(alias)
        if conversation_id is None:
            return False
        async with self._db.acquire() as conn:
            conversation = await self._ctx.messaging.find(conn, conversation_id)
        if conversation is None:
            return False
        async with self._locked(alias):
            await self.ensure_portal(conversation)
        return True

    async def ensure_portal(self, conversation: Conversation) -> str:
        """The conversation's portal room, created now if it has none; return its room id."""
        async with self._db.acquire() as conn:
            portal = await self._ctx.portals.get_portal_by_conversation(conn, conversation.id)
            if portal is not None:
                return portal.room_id
            members = await self._ctx.users.get_many(conn, conversation.participant_ids)
        ghosts = [await self.ensure_ghost(u.id) for u in members if not u.is_matrix_user]
        matrix_users = [u.matrix_user_id for u in members if u.matrix_user_id is not None]
        spec = RoomSpec(
            name=conversation.title,
            topic=conversation.topic,
            alias_localpart=self._ctx.ids.alias_localpart(conversation.id),
            invite=[*ghosts, *matrix_users],
            is_direct=not conversation.is_group,
            power_levels={"users": {self._ctx.ids.bot: 100, **{g: 50 for g in ghosts}}},
        )
        room_id = await self._intents.create_room(self._ctx.ids.bot, spec)
        for ghost in ghosts:
            await self._intents.join(ghost, room_id)
        async with self._db.transaction() as conn:
            await self._ctx.portals.insert_portal(
                conn, room_id, conversation.id, self._ctx.ids.alias(conversation.id)
            )
        log.info("Created portal %s for conversation %s", room_id, conversation.id)
        return room_id

    # --- third-party lookups ---------------------------------------------------------------------

    def _user_entry(self, network_id: uuid.UUID, name: str) -> dict[str, Any]:
        return {
            "userid": self._ctx.ids.ghost(network_id),
            "protocol": self._protocol,
            "fields": {"userid": str(network_id), "name": name},
        }

    def _location_entry(self, conversation_id: uuid.UUID) -> dict[str, Any]:
        return {
            "alias": self._ctx.ids.alias(conversation_id),
            "protocol": self._protocol,
            "fields": {"conversationid": str(conversation_id)},
        }

    async def lookup_users(self, fields: Mapping[str, str]) -> list[dict[str, Any]]:
        async with self._db.acquire() as conn:
            if "userid" in fields:
                try:
                    user = await self._ctx.users.find(conn, uuid.UUID(fields["userid"]))
                except ValueError:
                    return []
                return [] if user is None else [self._user_entry(user.id, user.display_name)]
            name = fields.get("name", "").strip()
            if not name:
                return []
            found = await self._ctx.users.search(conn, name, limit=_LOOKUP_LIMIT)
        return [self._user_entry(u.id, u.display_name) for u in found if not u.is_matrix_user]

    async def lookup_locations(self, fields: Mapping[str, str]) -> list[dict[str, Any]]:
        try:
            conversation_id = uuid.UUID(fields.get("conversationid", ""))
        except ValueError:
            return []
        async with self._db.acquire() as conn:
            found = await self._ctx.messaging.find(conn, conversation_id)
        return [] if found is None else [self._location_entry(found.id)]

    async def user_by_mxid(self, user_id: str) -> list[dict[str, Any]]:
        network_id = self._ctx.ids.network_user_of(user_id)
        if network_id is None:
            return []
        return await self.lookup_users({"userid": str(network_id)})

    async def location_by_alias(self, alias: str) -> list[dict[str, Any]]:
        conversation_id = self._ctx.ids.conversation_of(alias)
        if conversation_id is None:
            return []
        return await self.lookup_locations({"conversationid": str(conversation_id)})
