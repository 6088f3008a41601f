"""All SQL of messaging: conversations, participants, messages, reactions, read markers.

Over 400 lines because every statement of the domain lives here (stores hold all SQL); the read
queries with filters are :mod:`.queries`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from .models import Conversation, Message, Origin, Reaction

_CONVERSATION = """
    c.id, c.is_group, c.title, c.topic, c.created_by, c.created_at, c.last_message_at,
    c.is_active,
    ARRAY(SELECT p.user_id FROM conversation_participant p
          WHERE p.conversation_id = c.id ORDER BY p.joined_at, p.user_id) AS participant_ids
"""

_MESSAGE = """
    m.id, m.conversation_id, m.sender_id, m.content, m.format, m.formatted_content, m.msgtype,
    m.media, m.reply_to_message_id, m.mentions, m.sent_at, m.edited_at, m.is_active,
    m.record_version, m.origin, m.event_id,
    ARRAY(SELECT r.user_id FROM read_marker r
          WHERE r.conversation_id = m.conversation_id AND r.read_up_to >= m.sent_at
            AND r.user_id <> m.sender_id ORDER BY r.user_id) AS read_by,
    ARRAY(SELECT d.user_id FROM message_deletion d
          WHERE d.message_id = m.id ORDER BY d.user_id) AS deleted_for
"""


def _conversation(row: Mapping[str, Any]) -> Conversation:
    data = dict(row)
    data["participant_ids"] = tuple(data["participant_ids"])
    return Conversation(**data)


def _message(row: Mapping[str, Any]) -> Message:
    data = dict(row)
    data["origin"] = Origin(data["origin"])
    data["mentions"] = tuple(data["mentions"])
    data["read_by"] = tuple(data["read_by"])
    data["deleted_for"] = tuple(data["deleted_for"])
    if isinstance(data["media"], str):
        data["media"] = json.loads(data["media"])
    return Message(**data)


def message_arrays(messages: Sequence[Message]) -> list[Any]:
    """The 13 arrays of ``insert_messages``'s ``unnest`` (also the one-statement post's)."""
    return [
        [m.id for m in messages],
        [m.conversation_id for m in messages],
        [m.sender_id for m in messages],
        [m.content for m in messages],
        [m.format for m in messages],
        [m.formatted_content for m in messages],
        [m.msgtype for m in messages],
        [None if m.media is None else json.dumps(m.media) for m in messages],
        [m.reply_to_message_id for m in messages],
        ["{" + ",".join(map(str, m.mentions)) + "}" for m in messages],
        [m.sent_at for m in messages],
        [m.origin.value for m in messages],
        [m.event_id for m in messages],
    ]


#: The columns of a conversation with its participants (alias ``c``), and their reader: for
#: statements outside this store that read a conversation with other things.
CONVERSATION_COLUMNS = _CONVERSATION
conversation_of = _conversation


class MessagingStore:
    # --- conversations ----------------------------------------------------------------------

    async def insert_conversation(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        *,
        is_group: bool,
        title: str | None,
        topic: str | None,
        created_by: uuid.UUID | None,
        direct_key: str | None,
        participant_ids: Sequence[uuid.UUID],
    ) -> Conversation | None:
        """Insert a conversation with its participants; None if the direct pair already has one."""
        row = await conn.fetchrow(
            """
            WITH c AS (
                INSERT INTO conversation (id, is_group, title, topic, created_by, direct_key)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (direct_key) DO NOTHING
                RETURNING id
            ), p AS (
                INSERT INTO conversation_participant (conversation_id, user_id)
                SELECT c.id, u FROM c, unnest($7::uuid[]) WITH ORDINALITY AS x(u, n) ORDER BY n
            )
            SELECT id FROM c
            """,
            conversation_id,
            is_group,
            title,
            topic,
            created_by,
            direct_key,
            list(participant_ids),
        )
        if row is None:
            return None
        return await self.get_conversation(conn, conversation_id)

    async def get_conversation(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID
    ) -> Conversation | None:
        row = await conn.fetchrow(
            f"SELECT {_CONVERSATION} FROM conversation c WHERE c.id = $1", conversation_id
        )
        return None if row is None else _conversation(row)

    async def get_conversations(
        self, conn: asyncpg.Connection, conversation_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Conversation]:
        rows = await conn.fetch(
            f"SELECT {_CONVERSATION} FROM conversation c WHERE c.id = ANY($1::uuid[])",
            list(conversation_ids),
        )
        return {r["id"]: _conversation(r) for r in rows}

    async def get_direct_conversation(
        self, conn: asyncpg.Connection, direct_key: str
    ) -> Conversation | None:
        row = await conn.fetchrow(
            f"SELECT {_CONVERSATION} FROM conversation c WHERE c.direct_key = $1", direct_key
        )
        return None if row is None else _conversation(row)

    async def lock_conversation(self, conn: asyncpg.Connection, conversation_id: uuid.UUID) -> bool:
        """Serialise changes to one conversation's participants within the DB transaction."""
        row = await conn.fetchval(
            "SELECT 1 FROM conversation WHERE id = $1 FOR UPDATE", conversation_id
        )
        return row is not None

    async def update_conversation(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        *,
        title: str | None = None,
        topic: str | None = None,
    ) -> None:
        await conn.execute(
            """
            UPDATE conversation SET title = COALESCE($2, title), topic = COALESCE($3, topic)
            WHERE id = $1
            """,
            conversation_id,
            title,
            topic,
        )

    async def deactivate_conversation(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID
    ) -> bool:
        """Deactivate a conversation (freeing its pair's direct key for a new 1:1); False if it
        was inactive already."""
        done = await conn.fetchval(
            """
            UPDATE conversation SET is_active = false, direct_key = NULL
            WHERE id = $1 AND is_active RETURNING true
            """,
            conversation_id,
        )
        return bool(done)

    async def add_participants(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
    ) -> list[uuid.UUID]:
        """Add participants; return those who were not already in."""
        rows = await conn.fetch(
            """
            INSERT INTO conversation_participant (conversation_id, user_id)
            SELECT $1, u FROM unnest($2::uuid[]) AS u
            ON CONFLICT DO NOTHING
            RETURNING user_id
            """,
            conversation_id,
            list(user_ids),
        )
        return [r["user_id"] for r in rows]

    async def remove_participant(
        self, conn: asyncpg.Connection, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> bool:
        status = await conn.execute(
            "DELETE FROM conversation_participant WHERE conversation_id = $1 AND user_id = $2",
            conversation_id,
            user_id,
        )
        return bool(status == "DELETE 1")

    async def list_conversations(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, limit: int, offset: int = 0
    ) -> list[Conversation]:
        """A user's conversations, most recently active first."""
        rows = await conn.fetch(
            f"""
            SELECT {_CONVERSATION}
            FROM conversation_participant mine
            JOIN conversation c ON c.id = mine.conversation_id
            WHERE mine.user_id = $1
            ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC
            LIMIT $2 OFFSET $3
            """,
            user_id,
            limit,
            offset,
        )
        return [_conversation(r) for r in rows]

    # --- messages -----------------------------------------------------------------------------

    async def insert_messages(
        self, conn: asyncpg.Connection, messages: Sequence[Message]
    ) -> set[uuid.UUID]:
        """Insert messages in one statement; move each conversation's ``last_message_at`` and
        count them active. Return the ids inserted: a message whose ``event_id`` exists
        already (a replayed event) is skipped."""
        rows = await conn.fetch(
            """
            WITH m AS (
                INSERT INTO message (id, conversation_id, sender_id, content, format,
                                     formatted_content, msgtype, media, reply_to_message_id,
                                     mentions, sent_at, origin, event_id)
                SELECT u.id, u.conversation_id, u.sender_id, u.content, u.format,
                       u.formatted_content, u.msgtype, u.media::jsonb, u.reply_to,
                       u.mentions::uuid[], u.sent_at, u.origin, u.event_id
                FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                            $6::text[], $7::text[], $8::text[], $9::uuid[], $10::text[],
                            $11::timestamptz[], $12::text[], $13::text[])
                     AS u(id, conversation_id, sender_id, content, format, formatted_content,
                          msgtype, media, reply_to, mentions, sent_at, origin, event_id)
                ON CONFLICT (event_id) DO NOTHING
                RETURNING id, conversation_id, sent_at
            ), c AS (
                UPDATE conversation SET last_message_at = GREATEST(last_message_at, s.at),
                                        message_count = message_count + s.n
                FROM (SELECT conversation_id, max(sent_at) AS at, count(*) AS n
                      FROM m GROUP BY conversation_id) s
                WHERE conversation.id = s.conversation_id
            )
            SELECT id FROM m
            """,
            *message_arrays(messages),
        )
        return {r["id"] for r in rows}

    async def get_message(self, conn: asyncpg.Connection, message_id: uuid.UUID) -> Message | None:
        row = await conn.fetchrow(f"SELECT {_MESSAGE} FROM message m WHERE m.id = $1", message_id)
        return None if row is None else _message(row)

    async def get_message_by_event(self, conn: asyncpg.Connection, event_id: str) -> Message | None:
        """The message a Matrix event created, or edited."""
        row = await conn.fetchrow(
            f"""
            SELECT {_MESSAGE} FROM message m
            WHERE m.event_id = $1
               OR m.id = (SELECT message_id FROM message_event WHERE event_id = $1)
            LIMIT 1
            """,
            event_id,
        )
        return None if row is None else _message(row)

    async def update_message_content(
        self,
        conn: asyncpg.Connection,
        message_id: uuid.UUID,
        *,
        content: str,
        formatted_content: str | None,
        edited_at: datetime,
        edit_event_id: str | None,
    ) -> Message | None:
        """Replace the content: ``editedAt`` set, ``recordVersion`` + 1; None for a replay."""
        row = await conn.fetchrow(
            """
            WITH e AS (
                INSERT INTO message_event (event_id, message_id, kind)
                SELECT $5, $1, 'edit' WHERE $5::text IS NOT NULL
                ON CONFLICT (event_id) DO NOTHING
                RETURNING 1
            )
            UPDATE message SET content = $2, formatted_content = $3,
                               format = CASE WHEN $3::text IS NULL THEN NULL
                                             ELSE 'org.matrix.custom.html' END,
                               edited_at = $4, record_version = record_version + 1
            WHERE id = $1 AND is_active AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM e))
            RETURNING id
            """,
            message_id,
            content,
            formatted_content,
            edited_at,
            edit_event_id,
        )
        if row is None:
            return None
        return await self.get_message(conn, message_id)

    async def deactivate_message(self, conn: asyncpg.Connection, message_id: uuid.UUID) -> bool:
        """Delete for everyone: the message stays as a tombstone (``isActive`` false).

        The conversation's active-message count goes down in the same statement.
        """
        return bool(
            await conn.fetchval(
                """
                WITH m AS (
                    UPDATE message SET is_active = false, record_version = record_version + 1
                    WHERE id = $1 AND is_active
                    RETURNING conversation_id
                ), c AS (
                    UPDATE conversation SET message_count = message_count - 1
                    FROM m WHERE conversation.id = m.conversation_id
                )
                SELECT EXISTS (SELECT 1 FROM m)
                """,
                message_id,
            )
        )

    async def set_message_event_id(
        self, conn: asyncpg.Connection, message_id: uuid.UUID, event_id: str
    ) -> None:
        await conn.execute(
            "UPDATE message SET event_id = $2 WHERE id = $1 AND event_id IS NULL",
            message_id,
            event_id,
        )

    async def insert_deletion(
        self, conn: asyncpg.Connection, message_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """Hide a message from one user (deleted for themselves)."""
        await conn.execute(
            """
            INSERT INTO message_deletion (message_id, user_id, conversation_id)
            SELECT $1, $2, conversation_id FROM message WHERE id = $1
            ON CONFLICT DO NOTHING
            """,
            message_id,
            user_id,
        )

    async def list_messages(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        *,
        viewer_id: uuid.UUID,
        limit: int,
        offset: int = 0,
    ) -> list[Message]:
        """Messages in ``sentAt`` order, less those the viewer deleted for themselves."""
        rows = await conn.fetch(
            f"""
            SELECT {_MESSAGE} FROM message m
            WHERE m.conversation_id = $1
              AND NOT EXISTS (SELECT 1 FROM message_deletion d
                              WHERE d.message_id = m.id AND d.user_id = $2)
            ORDER BY m.sent_at, m.id
            LIMIT $3 OFFSET $4
            """,
            conversation_id,
            viewer_id,
            limit,
            offset,
        )
        return [_message(r) for r in rows]

    # --- reactions and read markers -------------------------------------------------------------

    async def insert_reaction(
        self,
        conn: asyncpg.Connection,
        reaction_id: uuid.UUID,
        message_id: uuid.UUID,
        user_id: uuid.UUID,
        key: str,
        event_id: str | None,
    ) -> Reaction | None:
        row = await conn.fetchrow(
            """
            INSERT INTO reaction (id, message_id, user_id, key, event_id)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT DO NOTHING
            RETURNING id, message_id, user_id, key, event_id, created_at
            """,
            reaction_id,
            message_id,
            user_id,
            key,
            event_id,
        )
        return None if row is None else Reaction(**dict(row))

    async def delete_reaction_by_event(
        self, conn: asyncpg.Connection, event_id: str
    ) -> Reaction | None:
        row = await conn.fetchrow(
            """
            DELETE FROM reaction WHERE event_id = $1
            RETURNING id, message_id, user_id, key, event_id, created_at
            """,
            event_id,
        )
        return None if row is None else Reaction(**dict(row))

    async def list_reactions(
        self, conn: asyncpg.Connection, message_id: uuid.UUID
    ) -> list[Reaction]:
        rows = await conn.fetch(
            """
            SELECT id, message_id, user_id, key, event_id, created_at FROM reaction
            WHERE message_id = $1 ORDER BY created_at, id
            """,
            message_id,
        )
        return [Reaction(**dict(r)) for r in rows]

    async def upsert_read_marker(
        self,
        conn: asyncpg.Connection,
        conversation_id: uuid.UUID,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        read_up_to: datetime,
    ) -> bool:
        """Move the reader's marker forward (never back); True if it moved."""
        status = await conn.execute(
            """
            INSERT INTO read_marker (conversation_id, user_id, message_id, read_up_to)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (conversation_id, user_id) DO UPDATE
            SET message_id = EXCLUDED.message_id, read_up_to = EXCLUDED.read_up_to,
                updated_at = now()
            WHERE read_marker.read_up_to < EXCLUDED.read_up_to
            """,
            conversation_id,
            user_id,
            message_id,
            read_up_to,
        )
        return bool(status == "INSERT 0 1")

    # --- REST API: filtered, paged lists ------------------------------------------------------
    #
    # Filters are passed as plain values: a list restricts a column to its values (an empty list
    # matches nothing), None leaves the column unrestricted. A date filter is ``periods`` (half-open
    # [start, end) ranges, OR-ed), ``since`` / ``until`` bounds (inclusive, AND-ed) and
    # ``with_null`` (rows whose value is NULL also match).

    async def list_conversation_ids(
        self, conn: asyncpg.Connection, user_id: uuid.UUID
    ) -> list[uuid.UUID]:
        """The ids of every conversation ``user_id`` takes part in."""
        rows = await conn.fetch(
            "SELECT conversation_id FROM conversation_participant WHERE user_id = $1",
            user_id,
        )
        return [r["conversation_id"] for r in rows]
