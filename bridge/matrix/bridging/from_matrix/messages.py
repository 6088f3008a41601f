"""Room messages, edits, replies, redactions, reactions, receipts, names and topics."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ....errors import BridgeError
from ....messaging.models import NewMessage, Origin
from ....messaging.rules import MEDIA_MSGTYPES
from ...inbox.events import InboxEvent, Outcome
from ..context import BridgingContext
from .commands import CommandHandler

log = logging.getLogger(__name__)


def relation_of(content: dict[str, Any]) -> dict[str, Any]:
    relates = content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


def reply_target(relation: dict[str, Any]) -> str | None:
    """The event id a message replies to, if it is a reply."""
    in_reply_to = relation.get("m.in_reply_to")
    if isinstance(in_reply_to, dict) and isinstance(in_reply_to.get("event_id"), str):
        return str(in_reply_to["event_id"])
    return None


def mentioned_users(content: dict[str, Any]) -> list[str]:
    """The Matrix user ids a message's ``m.mentions`` names (at most 50)."""
    mentions = content.get("m.mentions")
    user_ids = mentions.get("user_ids") if isinstance(mentions, dict) else None
    if not isinstance(user_ids, list):
        return []
    return [u for u in user_ids[:50] if isinstance(u, str)]


def new_message(
    event: InboxEvent,
    content: dict[str, Any],
    *,
    reply_to: uuid.UUID | None,
    mentions: Sequence[uuid.UUID],
) -> NewMessage:
    """What an ``m.room.message`` with a string ``body`` posts to the network."""
    msgtype = content.get("msgtype", "m.text")
    media: dict[str, Any] | None = None
    if msgtype in MEDIA_MSGTYPES:
        media = {k: content[k] for k in ("url", "info", "filename") if k in content}
    formatted = None
    if content.get("format") == "org.matrix.custom.html" and isinstance(
        content.get("formatted_body"), str
    ):
        formatted = content["formatted_body"]
    return NewMessage(
        content=content["body"],
        msgtype=msgtype if isinstance(msgtype, str) else "m.text",
        formatted_content=formatted,
        media=media,
        reply_to_message_id=reply_to,
        mentions=tuple(mentions),
        event_id=event.event_id,
        sent_at=_timestamp(event.event.get("origin_server_ts")),
    )


class RoomEventHandlers:
    """Handlers for a portal's timeline; the management room's messages go to commands."""

    def __init__(self, ctx: BridgingContext, commands: CommandHandler) -> None:
        self.ctx = ctx
        self.commands = commands

    async def _portal_sender(
        self, conn: asyncpg.Connection, event: InboxEvent
    ) -> tuple[uuid.UUID, uuid.UUID] | None:
        """(conversation id, sender's network id) for an allowed sender in a portal."""
        sender = event.event["sender"]
        if self.ctx.ids.is_bridged(sender):
            return None
        portal = await self.ctx.portals.get_portal_by_room(conn, event.event["room_id"])
        if portal is None:
            return None
        if not self.ctx.allowed(sender):
            await self.ctx.notice(
                conn,
                portal.room_id,
                f"{sender}: your server is not allowed to use this bridge; "
                "your message was not delivered.",
            )
            return None
        user = await self.ctx.matrix_user(conn, sender)
        return portal.conversation_id, user.id

    async def message(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        ev = event.event
        content = ev.get("content") or {}
        if not isinstance(content, dict) or not isinstance(content.get("body"), str):
            return Outcome.IGNORED  # redacted or malformed content: nothing to bridge
        room_id = ev["room_id"]
        owner = await self.ctx.portals.is_management_room(conn, room_id)
        if owner is not None and ev["sender"] == owner:
            return await self.commands.run(conn, room_id, owner, content["body"])
        found = await self._portal_sender(conn, event)
        if found is None:
            return Outcome.IGNORED
        conversation_id, sender = found
        relation = relation_of(content)
        try:
            if relation.get("rel_type") == "m.replace":
                return await self._edit(conn, sender, content, relation, event.event_id)
            return await self._post(conn, conversation_id, sender, content, relation, event)
        except BridgeError as exc:
            await self.ctx.notice(conn, room_id, f"Not delivered to the network: {exc.message}")
            return Outcome.PROCESSED

    async def _post(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        sender: uuid.UUID,
        content: dict[str, Any],
        relation: dict[str, Any],
        event: InboxEvent,
    ) -> Outcome:
        reply_to = None
        target_event = reply_target(relation)
        if target_event is not None:
            target = await self.ctx.messaging.find_by_event(conn, target_event)
            reply_to = target.id if target else None
        mentions = []
        for user_id in mentioned_users(content):
            network_id = await self.ctx.participant_of(conn, user_id)
            if network_id is not None:
                mentions.append(network_id)
        await self.ctx.messaging.post(
            conn,
            sender,
            conversation_id,
            new_message(event, content, reply_to=reply_to, mentions=mentions),
            origin=Origin.MATRIX,
        )
        return Outcome.PROCESSED

    async def _edit(
        self,
        conn: asyncpg.Connection,
        sender: uuid.UUID,
        content: dict[str, Any],
        relation: dict[str, Any],
        edit_event_id: str,
    ) -> Outcome:
        new = content.get("m.new_content")
        original = relation.get("event_id")
        if (
            not isinstance(new, dict)
            or not isinstance(new.get("body"), str)
            or not isinstance(original, str)
        ):
            return Outcome.IGNORED
        message = await self.ctx.messaging.find_by_event(conn, original)
        if message is None:
            return Outcome.IGNORED
        formatted = (
            new.get("formatted_body") if new.get("format") == "org.matrix.custom.html" else None
        )
        await self.ctx.messaging.edit(
            conn,
            sender,
            message.id,
            content=new["body"],
            formatted_content=formatted if isinstance(formatted, str) else None,
            edit_event_id=edit_event_id,
        )
        return Outcome.PROCESSED

    async def redaction(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        ev = event.event
        redacts = ev.get("redacts") or (ev.get("content") or {}).get("redacts")
        if not isinstance(redacts, str) or self.ctx.ids.is_bridged(ev["sender"]):
            return Outcome.IGNORED
        portal = await self.ctx.portals.get_portal_by_room(conn, ev["room_id"])
        if portal is None:
            return Outcome.IGNORED
        if await self.ctx.messaging.unreact_event(conn, redacts) is not None:
            return Outcome.PROCESSED
        message = await self.ctx.messaging.find_by_event(conn, redacts)
        if message is None or message.conversation_id != portal.conversation_id:
            return Outcome.IGNORED
        # Gone for everyone in Matrix (the homeserver checked the redacter's power): a fact.
        await self.ctx.messaging.delete(conn, message.id, actor=None, origin=Origin.MATRIX)
        return Outcome.PROCESSED

    async def reaction(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        relation = relation_of(event.event.get("content") or {})
        if relation.get("rel_type") != "m.annotation":
            return Outcome.IGNORED
        target, key = relation.get("event_id"), relation.get("key")
        if not isinstance(target, str) or not isinstance(key, str):
            return Outcome.IGNORED
        found = await self._portal_sender(conn, event)
        if found is None:
            return Outcome.IGNORED
        conversation_id, sender = found
        message = await self.ctx.messaging.find_by_event(conn, target)
        if message is None or message.conversation_id != conversation_id:
            return Outcome.IGNORED
        try:
            await self.ctx.messaging.react(conn, sender, message.id, key, event_id=event.event_id)
        except BridgeError as exc:
            log.info("Reaction %s not bridged: %s", event.event_id, exc.message)
        return Outcome.PROCESSED

    async def receipt(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        content = event.event.get("content")
        if not isinstance(content, dict) or event.room_id is None:
            return Outcome.IGNORED
        portal = await self.ctx.portals.get_portal_by_room(conn, event.room_id)
        if portal is None:
            return Outcome.IGNORED
        moved = False
        for event_id, receipts in content.items():
            reads = receipts.get("m.read") if isinstance(receipts, dict) else None
            if not isinstance(reads, dict):
                continue
            message = await self.ctx.messaging.find_by_event(conn, event_id)
            if message is None or message.conversation_id != portal.conversation_id:
                continue
            for user_id in reads:
                if not isinstance(user_id, str) or self.ctx.ids.is_bridged(user_id):
                    continue
                reader = await self.ctx.users.find_matrix_user(conn, user_id)
                if reader is None:
                    continue
                try:
                    moved |= await self.ctx.messaging.mark_read(conn, reader.id, message.id)
                except BridgeError:
                    continue
        return Outcome.PROCESSED if moved else Outcome.IGNORED

    async def name_or_topic(self, conn: asyncpg.Connection, event: InboxEvent) -> Outcome:
        ev = event.event
        if self.ctx.ids.is_bridged(ev["sender"]) or ev.get("state_key") != "":
            return Outcome.IGNORED
        portal = await self.ctx.portals.get_portal_by_room(conn, ev["room_id"])
        content = ev.get("content") or {}
        if portal is None or not self.ctx.allowed(ev["sender"]):
            return Outcome.IGNORED
        if ev["type"] == "m.room.name" and isinstance(content.get("name"), str):
            await self.ctx.messaging.update(
                conn, portal.conversation_id, actor=None, title=content["name"]
            )
        elif ev["type"] == "m.room.topic" and isinstance(content.get("topic"), str):
            await self.ctx.messaging.update(
                conn, portal.conversation_id, actor=None, topic=content["topic"]
            )
        else:
            return Outcome.IGNORED
        return Outcome.PROCESSED


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, int) and value > 0:
        return datetime.fromtimestamp(value / 1000, UTC)
    return None
