"""The SQL of a network post written in one statement with its Matrix side.

A post from the REST API makes a message, moves its conversation's counters, notifies the
other participants and queues what the sender's ghost sends to Matrix (and, the first time or
after a rename, the ghost's profile). Made one statement per effect in a transaction, that is
about ten round trips; here it is two: one read of everything the rules and the Matrix side
need, one write of everything, which is atomic by itself (so no ``BEGIN``/``COMMIT`` either).

The write re-checks what the read found and the rules relied on (the conversation is active,
the sender is in it) and stores nothing when that no longer holds. Its parts take their
parameters from the stores that own the tables (:func:`message_arrays`, :func:`group_arrays`,
:func:`item_arrays`, so the outbox rows are the typed actions as the outbox store encodes
them), and it locks the conversation's row before the outbox lanes', the order of every
transaction that posts and queues.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ...messaging.models import Conversation, Message
from ...messaging.store import CONVERSATION_COLUMNS, conversation_of, message_arrays
from ...notifications.models import Notification
from ...notifications.store import group_arrays
from ..outbox.store import OutboxItem, item_arrays

_CONTEXT = f"""
SELECT {CONVERSATION_COLUMNS},
       u.display_name AS sender_display_name, u.avatar_url AS sender_avatar_url,
       u.matrix_user_id AS sender_matrix_user_id,
       (SELECT g.displayname FROM ghost g WHERE g.user_id = $3) AS ghost_displayname,
       (SELECT p.room_id FROM portal p WHERE p.conversation_id = c.id) AS room_id
FROM conversation c LEFT JOIN network_user u ON u.id = $2
WHERE c.id = $1
"""

# $1-$13 the message (one), $14-$20 the notification groups. ``c`` returns the conversation
# once the message is in; everything else hangs on it.
_POST = """
WITH m AS (
    INSERT INTO message (id, conversation_id, sender_id, content, format, formatted_content,
                         msgtype, media, reply_to_message_id, mentions, sent_at, origin,
                         event_id)
    SELECT u.id, u.conversation_id, u.sender_id, u.content, u.format, u.formatted_content,
           u.msgtype, u.media::jsonb, u.reply_to, u.mentions::uuid[], u.sent_at, u.origin,
           u.event_id
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::uuid[], $10::text[], $11::timestamptz[],
                $12::text[], $13::text[])
         AS u(id, conversation_id, sender_id, content, format, formatted_content, msgtype,
              media, reply_to, mentions, sent_at, origin, event_id)
    WHERE EXISTS (SELECT 1 FROM conversation cv
                  JOIN conversation_participant p ON p.conversation_id = cv.id
                  WHERE cv.id = u.conversation_id AND cv.is_active AND p.user_id = u.sender_id)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING conversation_id, sent_at
), c AS (
    UPDATE conversation SET last_message_at = GREATEST(last_message_at, m.sent_at),
                            message_count = message_count + 1
    FROM m WHERE conversation.id = m.conversation_id
    RETURNING conversation.id
), g AS MATERIALIZED (
    SELECT g.ids::uuid[] AS ids, g.users::uuid[] AS users, g.kind, g.title, g.body,
           g.payload::jsonb AS payload, g.created_at
    FROM unnest($14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[],
                $20::timestamptz[])
         AS g(ids, users, kind, title, body, payload, created_at)
), n AS (
    INSERT INTO notification (id, user_id, kind, title, body, payload, created_at)
    SELECT n.id, n.user_id, g.kind, g.title, g.body, g.payload, g.created_at
    FROM c CROSS JOIN g CROSS JOIN LATERAL unnest(g.ids, g.users) AS n(id, user_id)
)"""

# And the outbox rows ($21-$24, in order, each to the end of its lane) with their lanes, and
# the ghost's profile as queued ($25-$28; no ghost row when $25 is NULL). Only when something
# is queued: the outbox's insert trigger wakes every bridge process, rows or not.
_QUEUE = """, o AS (
    INSERT INTO outbox (lane, sender, action, payload)
    SELECT q.lane, q.sender, q.action, q.payload::jsonb
    FROM c CROSS JOIN unnest($21::text[], $22::text[], $23::text[], $24::text[])
                      WITH ORDINALITY AS q(lane, sender, action, payload, ord)
    ORDER BY q.ord
    RETURNING lane
), l AS (
    INSERT INTO outbox_lane AS l (lane)
    SELECT DISTINCT lane FROM o ORDER BY lane
    ON CONFLICT (lane) DO UPDATE SET seq = l.seq + 1
), gh AS (
    INSERT INTO ghost (user_id, network_user_id, displayname, avatar_url, profile_synced_at)
    SELECT $25, $26, $27, $28, now() FROM c WHERE $25::text IS NOT NULL
    ON CONFLICT (user_id) DO UPDATE
    SET displayname = EXCLUDED.displayname, avatar_url = EXCLUDED.avatar_url,
        profile_synced_at = now()
)"""

_END = "\nSELECT count(*) FROM c"

_INSERT_POST = _POST + _END
_INSERT_POST_QUEUED = _POST + _QUEUE + _END


@dataclass(frozen=True, slots=True)
class PostContext:
    """What a network post needs to know before it is written: its conversation, and on the
    Matrix side its sender (``sender_display_name`` None if there is no such user), the
    display name their ghost was last given (None: none yet), the portal room (None: none
    yet)."""

    conversation: Conversation
    sender_display_name: str | None
    sender_avatar_url: str | None
    sender_matrix_user_id: str | None
    ghost_displayname: str | None
    room_id: str | None


@dataclass(frozen=True, slots=True)
class GhostRecord:
    """The ghost's row as its queued profile leaves it."""

    user_id: str
    network_user_id: uuid.UUID
    displayname: str
    avatar_url: str | None


class PostStore:
    """The two statements of a network post (see the module)."""

    async def get_post_context(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        sender: uuid.UUID,
        ghost: str,
    ) -> PostContext | None:
        """The conversation (None if there is none) with the sender, their ghost ``ghost``
        and the portal."""
        row = await conn.fetchrow(_CONTEXT, conversation_id, sender, ghost)
        if row is None:
            return None
        data = dict(row)
        extra = {
            k: data.pop(k)
            for k in (
                "sender_display_name",
                "sender_avatar_url",
                "sender_matrix_user_id",
                "ghost_displayname",
                "room_id",
            )
        }
        return PostContext(conversation=conversation_of(data), **extra)

    async def insert_post(
        self,
        conn: asyncpg.Connection,
        message: Message,
        notifications: Sequence[Sequence[Notification]],
        queued: Sequence[OutboxItem] = (),
        ghost: GhostRecord | None = None,
    ) -> bool:
        """Store the message with its counters, notifications (in groups, as
        ``insert_notifications`` takes them) and outbox rows, and the ghost's profile record,
        in one statement; False, with nothing stored, if its conversation is no longer active
        or its sender no longer in it (or its Matrix event was taken already)."""
        args = [*message_arrays([message]), *group_arrays(notifications)]
        if queued:
            args += item_arrays(queued)
            args += (
                [None, None, None, None]
                if ghost is None
                else [ghost.user_id, ghost.network_user_id, ghost.displayname, ghost.avatar_url]
            )
        elif ghost is not None:
            raise ValueError("a ghost's profile is recorded with the action that sets it")
        statement = _INSERT_POST_QUEUED if queued else _INSERT_POST
        return bool(await conn.fetchval(statement, *args))
