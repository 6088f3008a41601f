"""Network posts to Matrix in one statement: the message, its notifications and what the
sender's ghost sends, written together (see :mod:`..post_store`).

It stands in for :meth:`NetworkChangesToMatrix.message_posted` on the REST API's posts, and
queues the same actions: the ghost's profile the first time (or after a rename), then the
message in the conversation's lane, in its portal once there is one.
"""

from __future__ import annotations

import uuid

import asyncpg

from ....errors import NotFound
from ....messaging.messages import PreparePost
from ....messaging.models import Message, Origin
from ....notifications.models import Notification
from ...outbox.queue import OutboxQueue
from ...outbox.sender import conversation_lane
from ...outbox.store import OutboxItem
from ..post_store import GhostRecord, PostStore
from .network_changes import NetworkChangesToMatrix


class NetworkPostsToMatrix:
    """A :class:`~bridge.messaging.messages.PostWriter` for the Matrix bridge."""

    def __init__(
        self, listener: NetworkChangesToMatrix, outbox: OutboxQueue, store: PostStore
    ) -> None:
        self.listener = listener
        self._outbox = outbox
        self._store = store

    async def write_post(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        sender: uuid.UUID,
        prepare: PreparePost,
    ) -> tuple[Message, list[list[Notification]]] | None:
        ghost = self.listener.ctx.ids.ghost(sender)
        context = await self._store.get_post_context(conn, conversation_id, sender, ghost)
        if context is None:
            return None
        message, notifications = await prepare(context.conversation)
        queued: list[OutboxItem] = []
        record = None
        if message.origin is Origin.NETWORK and context.sender_matrix_user_id is None:
            # (A Matrix user's own words come from Matrix, not from a ghost.)
            if context.sender_display_name is None:
                raise NotFound(f"no network user {sender}")
            name, profile = self.listener.ghost_profile(
                context.sender_display_name, context.sender_avatar_url
            )
            if context.ghost_displayname != name:
                queued.append(OutboxItem(f"ghost:{ghost}", ghost, profile))
                record = GhostRecord(ghost, sender, name, context.sender_avatar_url)
            send = await self.listener.send_of(conn, message)
            send.room_id = context.room_id
            queued.append(OutboxItem(conversation_lane(conversation_id), ghost, send))
        if not await self._store.insert_post(conn, message, notifications, queued, record):
            return None
        if queued:
            self._outbox.committed()
        return message, notifications
