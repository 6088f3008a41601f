"""The REST API's usual list pages, rendered as JSON by PostgreSQL in the statement that
finds them.

A conversation's first pages of messages and a user's unfiltered conversations are most of
what clients read. For those, one statement checks, pages and counts as
:mod:`bridge.messaging.queries` does, and also renders the page's rows as the JSON array the
REST API answers: the process only copies the bytes into its envelope instead of building a
domain object, a response object and their JSON for every row.

The JSON is that of :class:`bridge.api.resources.Message` and
:class:`bridge.api.resources.Conversation` (the fields in their order, timestamps as
:func:`bridge.api.resources.iso` writes them): those types stay the contract (the OpenAPI
document, every other answer), and a test renders the same rows both ways and requires the
same JSON.
"""

# The statements are built from this module's constant fragments only (no outside input).
# ruff: noqa: S608

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from ..listing import Position

_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def _iso(column: str) -> str:
    """``column`` (timestamptz) as ``iso()`` writes it: UTC, microseconds, ``Z``."""
    return f"to_char({column} AT TIME ZONE 'UTC', '{_ISO}')"


#: ``message m`` as viewer $1 sees it, the fields of ``resources.Message`` in its order.
_MESSAGE_JSON = f"""
    SELECT m.id AS "id",
           CASE WHEN m.is_active THEN m.content ELSE '' END AS "content",
           m.sender_id AS "senderUserId",
           CASE WHEN EXISTS (SELECT 1 FROM message_deletion d
                             WHERE d.message_id = m.id AND d.user_id = $1)
                THEN ARRAY[$1::uuid] ELSE '{{}}'::uuid[] END AS "deletedFor",
           array_prepend(m.sender_id, ARRAY(
               SELECT r.user_id FROM read_marker r
               WHERE r.conversation_id = m.conversation_id AND r.read_up_to >= m.sent_at
                 AND r.user_id <> m.sender_id ORDER BY r.user_id)) AS "readBy",
           m.conversation_id AS "conversationId",
           {_iso("m.sent_at")} AS "sentAt",
           m.msgtype AS "msgtype",
           CASE WHEN m.is_active THEN m.format END AS "format",
           CASE WHEN m.is_active THEN m.formatted_content END AS "formattedContent",
           CASE WHEN m.is_active THEN m.media END AS "media",
           m.reply_to_message_id AS "replyToMessageId",
           m.mentions AS "mentions",
           {_iso("m.edited_at")} AS "editedAt",
           m.is_active AS "isActive",
           m.record_version AS "recordVersion",
           {_iso("m.sent_at")} AS "createdAt",
           {_iso("COALESCE(m.edited_at, m.sent_at)")} AS "updatedAt",
           m.sender_id AS "_owner"
"""

#: ``conversation c``, the fields of ``resources.Conversation`` in its order.
_CONVERSATION_JSON = f"""
    SELECT c.id AS "id",
           c.is_group AS "isGroup",
           ARRAY(SELECT p.user_id FROM conversation_participant p
                 WHERE p.conversation_id = c.id ORDER BY p.joined_at, p.user_id)
               AS "participantIds",
           {_iso("c.last_message_at")} AS "lastMessageAt",
           c.title AS "title",
           c.topic AS "topic",
           c.is_active AS "isActive",
           1 AS "recordVersion",
           {_iso("c.created_at")} AS "createdAt",
           {_iso("COALESCE(c.last_message_at, c.created_at)")} AS "updatedAt",
           c.created_by AS "_owner"
"""


def _page_columns(limit: str, at: str, order: str, table: str, fields: str) -> str:
    """What both statements answer besides their total, from their ``keys`` (the page's and
    one more), ``page`` and ``tail`` (the page's last row): whether more follow, how many rows
    the page has, its last position and its rows (``fields`` of ``table``, aliased by its
    initial) as one JSON array in ``order``."""
    alias = table[0]
    return f"""
       (SELECT count(*) FROM keys) > {limit} AS more,
       (SELECT count(*) FROM page) AS shown,
       (SELECT {at} FROM tail) AS last_at,
       (SELECT id FROM tail) AS last_id,
       (SELECT '[' || COALESCE(string_agg(row_to_json(j)::text, ',' ORDER BY {order}), '') || ']'
        FROM page k JOIN {table} {alias} ON {alias}.id = k.id
        CROSS JOIN LATERAL ({fields}) j) AS rows"""


_FIRST_MESSAGES = f"""
WITH conv AS (
    SELECT c.message_count, EXISTS (
        SELECT 1 FROM conversation_participant cp
        WHERE cp.conversation_id = c.id AND cp.user_id = $1) AS member
    FROM conversation c WHERE c.id = $2
), keys AS (
    SELECT m.id, m.sent_at FROM message m
    WHERE m.conversation_id = $2 AND (SELECT member FROM conv) AND m.is_active
      AND m.id NOT IN (SELECT d.message_id FROM message_deletion d
                       WHERE d.user_id = $1 AND d.conversation_id = $2)
    ORDER BY m.sent_at, m.id LIMIT $3::int + 1 OFFSET $4
), page AS (
    SELECT id, sent_at FROM keys ORDER BY sent_at, id LIMIT $3
), tail AS (
    SELECT sent_at, id FROM page ORDER BY sent_at DESC, id DESC LIMIT 1
)
SELECT conv.member,
       conv.message_count - (
           SELECT count(*) FROM message_deletion d JOIN message m ON m.id = d.message_id
           WHERE d.user_id = $1 AND d.conversation_id = $2 AND m.is_active
       ) AS total,{_page_columns("$3", "sent_at", "k.sent_at, k.id", "message", _MESSAGE_JSON)}
FROM conv
"""

_CONVERSATIONS = f"""
WITH keys AS (
    SELECT c.id, COALESCE(c.last_message_at, c.created_at) AS at
    FROM conversation_participant mine JOIN conversation c ON c.id = mine.conversation_id
    WHERE mine.user_id = $1 AND c.is_active
    ORDER BY at DESC, c.id DESC LIMIT $2::int + 1 OFFSET $3
), page AS (
    SELECT id, at FROM keys ORDER BY at DESC, id DESC LIMIT $2
), tail AS (
    SELECT at, id FROM page ORDER BY at, id LIMIT 1
)
SELECT (SELECT count(*) FROM conversation_participant mine
        JOIN conversation c ON c.id = mine.conversation_id
        WHERE mine.user_id = $1 AND c.is_active) AS total,{
    _page_columns("$2", "at", "k.at DESC, k.id DESC", "conversation", _CONVERSATION_JSON)
}
"""


@dataclass(frozen=True)
class RenderedPage:
    """One page of a list, its rows already the REST API's JSON array."""

    json: bytes
    #: How many rows the array holds.
    count: int
    total: int
    more: bool
    #: The position of the page's last row (for the next page's cursor); None when empty.
    last: Position | None


def _page(row: asyncpg.Record) -> RenderedPage:
    last = None if row["last_id"] is None else (row["last_at"], row["last_id"])
    return RenderedPage(
        row["rows"].encode(), int(row["shown"]), int(row["total"]), bool(row["more"]), last
    )


class RenderedQueries:
    """The usual list pages, rendered by PostgreSQL (reads only)."""

    async def first_messages(
        self,
        conn: asyncpg.Connection,
        viewer_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        limit: int,
        offset: int,
    ) -> RenderedPage | None:
        """Active messages of one conversation in ``(sentAt, id)`` order less those the viewer
        deleted for themselves, the page at ``offset`` and the total (the conversation's counter
        less the viewer's own deletions), in one statement with the participant check. None when
        the conversation is missing or the viewer is no participant (the caller says which)."""
        row = await conn.fetchrow(_FIRST_MESSAGES, viewer_id, conversation_id, limit, offset)
        if row is None or not row["member"]:
            return None
        return _page(row)

    async def conversations(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, limit: int, offset: int
    ) -> RenderedPage:
        """A user's active conversations, most recently active first (unfiltered), the page at
        ``offset`` and how many there are."""
        row = await conn.fetchrow(_CONVERSATIONS, user_id, limit, offset)
        assert row is not None  # an aggregate row, always
        return _page(row)
