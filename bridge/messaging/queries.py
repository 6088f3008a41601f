"""The SQL of the REST API's paged lists of conversations and messages.

Each statement is built from the filters actually given, out of a fixed set of fragments, every
value a ``$n`` parameter: Postgres plans (and caches) one shape per combination of filters, so
a cached generic plan walks the right index in order and stops at the page instead of a
catch-all ``($n IS NULL OR ...)`` plan that reads the whole conversation.

A page is found on keys first (``id`` and the sort key, from an index where it can be an
index-only walk) and the full rows are read for that page only. One row more than the page is
looked for, to tell whether there is a next page. Positions (keyset cursors) are the sort key of
the last row seen: ``(sent_at, id)`` for messages, ``(COALESCE(last_message_at, created_at),
id)`` for conversations.

Totals: without sender, reader or date filters, a conversation's visible messages are its
``message_count`` (active messages, kept by the statements that write messages) less the
viewer's own deletions of active ones; a user's conversations are their participations.
Otherwise the total is a count of the matching rows. With that cheap total known first, a
page past the middle of one conversation is found by walking its index from the end, so no
``pageNumber`` skips more than half of the conversation.

Over 400 lines because both lists share the fragment builder and the paging strategy above.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

import asyncpg

from ..listing import Page, Position
from .filters import ConversationFilter, DateRange, MessageFilter
from .models import Conversation, Message
from .store import _CONVERSATION, _MESSAGE, _conversation, _message

T = TypeVar("T")

#: From this offset on, a page past the middle of a conversation is found from its end.
FROM_THE_END = 100


class _Params:
    """The values of one statement; each becomes the next ``$n``."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


def _dates(p: _Params, column: str, dates: DateRange) -> str:
    bounds: list[str] = []
    if dates.periods is not None:
        lo = p([d[0] for d in dates.periods], "timestamptz[]")
        hi = p([d[1] for d in dates.periods], "timestamptz[]")
        bounds.append(
            f"EXISTS (SELECT 1 FROM unnest({lo}, {hi}) AS r(lo, hi) "
            f"WHERE {column} >= r.lo AND {column} < r.hi)"
        )
    if dates.since is not None:
        bounds.append(f"{column} >= {p(dates.since, 'timestamptz')}")
    if dates.until is not None:
        bounds.append(f"{column} <= {p(dates.until, 'timestamptz')}")
    if not dates.with_null:
        return " AND ".join(bounds) or "true"
    if not bounds:
        return f"{column} IS NULL"
    return f"({column} IS NULL OR ({' AND '.join(bounds)}))"


def _message_filters(
    p: _Params, viewer_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID], f: MessageFilter
) -> tuple[str, list[str]]:
    """The conversation scope (for a single conversation, else the ``$n`` of the id array) and
    the other conditions on ``message m``.

    ``f.unread_by`` keeps messages one of them has not read (past their read marker, not their
    own); ``f.deleted_for`` keeps those one of them hid, in place of the viewer's deletions
    (both probe the primary keys of ``read_marker`` and the deletions' user index)."""
    if len(conversation_ids) == 1:
        scope = p(conversation_ids[0], "uuid")
        hidden_scope = f"d.conversation_id = {scope}"
    else:
        scope = p(list(conversation_ids), "uuid[]")
        hidden_scope = f"d.conversation_id = ANY({scope})"
    # An uncorrelated NOT IN: one hashed set of the viewer's deletions, probed per row, so the
    # index walk keeps its order (an anti-join would lose it, a correlated probe costs more).
    conds = ["m.is_active"]
    if f.deleted_for is not None:
        conds.append(
            f"m.id IN (SELECT d.message_id FROM message_deletion d "
            f"WHERE d.user_id = ANY({p(list(f.deleted_for), 'uuid[]')}) AND {hidden_scope})"
        )
    if f.deleted_for is None or viewer_id not in f.deleted_for:
        conds.append(
            f"m.id NOT IN (SELECT d.message_id FROM message_deletion d "
            f"WHERE d.user_id = {p(viewer_id, 'uuid')} AND {hidden_scope})"
        )
    if f.unread_by is not None and len(f.unread_by) == 1:
        # One reader: past their marker, a range of the (conversation_id, sent_at) index (for
        # one conversation the marker is read once, before the walk).
        reader = p(f.unread_by[0], "uuid")
        marker_scope = scope if len(conversation_ids) == 1 else "m.conversation_id"
        conds.append(
            f"m.sender_id <> {reader} AND m.sent_at > COALESCE((SELECT r.read_up_to "
            f"FROM read_marker r WHERE r.conversation_id = {marker_scope} "
            f"AND r.user_id = {reader}), '-infinity'::timestamptz)"
        )
    elif f.unread_by is not None:
        conds.append(
            f"EXISTS (SELECT 1 FROM unnest({p(list(f.unread_by), 'uuid[]')}) AS u(id) "
            "WHERE u.id <> m.sender_id AND NOT EXISTS ("
            "SELECT 1 FROM read_marker r WHERE r.conversation_id = m.conversation_id "
            "AND r.user_id = u.id AND r.read_up_to >= m.sent_at))"
        )
    if f.sender_ids is not None:
        conds.append(f"m.sender_id = ANY({p(list(f.sender_ids), 'uuid[]')})")
    if f.reader_ids is not None:
        readers = p(list(f.reader_ids), "uuid[]")
        conds.append(
            f"(m.sender_id = ANY({readers}) OR EXISTS ("
            f"SELECT 1 FROM read_marker r WHERE r.conversation_id = m.conversation_id "
            f"AND r.user_id = ANY({readers}) AND r.read_up_to >= m.sent_at))"
        )
    if f.sent is not None:
        conds.append(_dates(p, "m.sent_at", f.sent))
    return scope, conds


class MessagingQueries:
    """Paged, filtered lists of the REST API (reads only)."""

    async def list_messages_page(
        self,
        conn: asyncpg.Connection,
        viewer_id: uuid.UUID,
        conversation_ids: Sequence[uuid.UUID],
        filters: MessageFilter,
        *,
        after: Position | None = None,
        count_after: bool = False,
        limit: int,
        offset: int = 0,
    ) -> Page[Message]:
        """Active messages of ``conversation_ids`` in ``(sentAt, id)`` order, less those the
        viewer deleted for themselves, and how many match in all.

        ``after`` starts past a ``(sentAt, id)`` position; the total counts the rows after it
        only when ``count_after`` (``afterMessageId``), else the whole list (a cursor).
        """
        if not conversation_ids:
            return Page([], 0, False)
        p = _Params()
        scope, conds = _message_filters(p, viewer_id, conversation_ids, filters)
        if after is not None:
            conds.append(
                f"(m.sent_at, m.id) > ({p(after[0], 'timestamptz')}, {p(after[1], 'uuid')})"
            )
        where = " AND ".join(conds)
        plain = filters.plain
        known: int | None = None
        if plain and after is None and len(conversation_ids) == 1 and offset >= FROM_THE_END:
            # The total is cheap here: a page past the middle is walked from the end.
            known = total = await self._count_visible(conn, viewer_id, conversation_ids)
            if offset * 2 > total:
                return await self._page_from_the_end(
                    conn, p, scope, where, total=total, limit=limit, offset=offset
                )
        take, skip = p(limit + 1, "bigint"), p(offset, "bigint")
        if len(conversation_ids) == 1:
            keys = f"""
                SELECT m.id, m.sent_at FROM message m
                WHERE m.conversation_id = {scope} AND {where}
                ORDER BY m.sent_at, m.id LIMIT {take} OFFSET {skip}
            """
        else:
            # Each conversation in index order, only offset + limit of each merged.
            keys = f"""
                SELECT page.id, page.sent_at FROM unnest({scope}) AS c(id)
                CROSS JOIN LATERAL (
                    SELECT m.id, m.sent_at FROM message m
                    WHERE m.conversation_id = c.id AND {where}
                    ORDER BY m.sent_at, m.id LIMIT {take} + {skip}
                ) page
                ORDER BY page.sent_at, page.id LIMIT {take} OFFSET {skip}
            """
        rows = await conn.fetch(
            f"SELECT {_MESSAGE} FROM ({keys}) k JOIN message m ON m.id = k.id "
            "ORDER BY k.sent_at, k.id",
            *p.values,
        )
        messages = [_message(r) for r in rows[:limit]]
        if known is not None:
            total = known
        elif plain and not (count_after and after is not None):
            total = await self._count_visible(conn, viewer_id, conversation_ids)
        else:
            c = _Params()
            scope, conds = _message_filters(c, viewer_id, conversation_ids, filters)
            if after is not None and count_after:
                conds.append(
                    f"(m.sent_at, m.id) > ({c(after[0], 'timestamptz')}, {c(after[1], 'uuid')})"
                )
            match = "=" if len(conversation_ids) == 1 else "= ANY"
            total = await conn.fetchval(
                f"SELECT count(*) FROM message m WHERE m.conversation_id {match}({scope}) "
                f"AND {' AND '.join(conds)}",
                *c.values,
            )
        return Page(messages, int(total), len(rows) > limit)

    async def _page_from_the_end(
        self,
        conn: asyncpg.Connection,
        p: _Params,
        scope: str,
        where: str,
        *,
        total: int,
        limit: int,
        offset: int,
    ) -> Page[Message]:
        """Rows ``offset`` to ``offset + limit`` of one conversation's ``total`` messages,
        found by walking its index backwards from the last (a deep page costs what an early
        one does)."""
        take = max(min(limit, total - offset), 0)
        skip = max(total - offset - limit, 0)
        rows = await conn.fetch(
            f"""
            SELECT {_MESSAGE} FROM (
                SELECT m.id, m.sent_at FROM message m
                WHERE m.conversation_id = {scope} AND {where}
                ORDER BY m.sent_at DESC, m.id DESC
                LIMIT {p(take, "bigint")} OFFSET {p(skip, "bigint")}
            ) k JOIN message m ON m.id = k.id
            ORDER BY k.sent_at, k.id
            """,
            *p.values,
        )
        return Page([_message(r) for r in rows], total, offset + len(rows) < total)

    async def _count_visible(
        self, conn: asyncpg.Connection, viewer_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
    ) -> int:
        """Active messages of the conversations less the viewer's deletions of active ones."""
        if len(conversation_ids) == 1:
            total = await conn.fetchval(
                """
                SELECT (SELECT message_count FROM conversation WHERE id = $2)
                     - (SELECT count(*) FROM message_deletion d
                        JOIN message m ON m.id = d.message_id
                        WHERE d.user_id = $1 AND d.conversation_id = $2 AND m.is_active)
                """,
                viewer_id,
                conversation_ids[0],
            )
        else:
            total = await conn.fetchval(
                """
                SELECT (SELECT COALESCE(sum(message_count), 0) FROM conversation
                        WHERE id = ANY($2::uuid[]))
                     - (SELECT count(*) FROM message_deletion d
                        JOIN message m ON m.id = d.message_id
                        WHERE d.user_id = $1 AND d.conversation_id = ANY($2::uuid[])
                          AND m.is_active)
                """,
                viewer_id,
                list(conversation_ids),
            )
        return int(total or 0)

    async def list_conversations_page(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        filters: ConversationFilter,
        *,
        after: Position | None = None,
        limit: int,
        offset: int = 0,
    ) -> Page[Conversation]:
        """A user's conversations, most recently active first, and how many match in all.
        ``after`` starts past a position of that order."""
        p = _Params()
        user = p(user_id, "uuid")
        conds = _conversation_filters(p, filters)
        if after is not None:
            conds.append(
                f"(COALESCE(c.last_message_at, c.created_at), c.id) < "
                f"({p(after[0], 'timestamptz')}, {p(after[1], 'uuid')})"
            )
        where = "".join(f" AND {c}" for c in conds)
        take, skip = p(limit + 1, "bigint"), p(offset, "bigint")
        plain = filters.plain
        # Unfiltered, the total is how many conversations the user is in: read with the page.
        count = (
            ", (SELECT count(*) FROM conversation_participant mine"
            " JOIN conversation c ON c.id = mine.conversation_id"
            f" WHERE mine.user_id = {user} AND c.is_active) AS page_total"
            if plain
            else ""
        )
        # Order and page the ids first; the participants arrays for the page's rows only.
        rows = await conn.fetch(
            f"""
            SELECT {_CONVERSATION}{count} FROM (
                SELECT c.id, COALESCE(c.last_message_at, c.created_at) AS at
                FROM conversation_participant mine
                JOIN conversation c ON c.id = mine.conversation_id
                WHERE mine.user_id = {user}{where}
                ORDER BY at DESC, c.id DESC LIMIT {take} OFFSET {skip}
            ) k JOIN conversation c ON c.id = k.id
            ORDER BY k.at DESC, k.id DESC
            """,
            *p.values,
        )
        if plain and rows:
            total = rows[0]["page_total"]
            rows = [{k: v for k, v in r.items() if k != "page_total"} for r in rows]
        elif plain:
            total = await conn.fetchval(
                """
                SELECT count(*) FROM conversation_participant mine
                JOIN conversation c ON c.id = mine.conversation_id
                WHERE mine.user_id = $1 AND c.is_active
                """,
                user_id,
            )
        else:
            c = _Params()
            user = c(user_id, "uuid")
            conds = _conversation_filters(c, filters)
            total = await conn.fetchval(
                f"""
                SELECT count(*) FROM conversation_participant mine
                JOIN conversation c ON c.id = mine.conversation_id
                WHERE mine.user_id = {user} AND {" AND ".join(conds)}
                """,
                *c.values,
            )
        return Page([_conversation(r) for r in rows[:limit]], int(total), len(rows) > limit)


def _conversation_filters(p: _Params, f: ConversationFilter) -> list[str]:
    conds: list[str] = ["c.is_active"]  # a deleted 1:1 is listed no more
    if f.is_group is not None:
        conds.append(f"c.is_group = ANY({p(list(f.is_group), 'bool[]')})")
    if f.participant_ids is not None:
        ids = p(list(f.participant_ids), "uuid[]")
        if f.all_participants:
            conds.append(
                f"ARRAY(SELECT p.user_id FROM conversation_participant p "
                f"WHERE p.conversation_id = c.id) @> {ids}"
            )
        else:
            conds.append(
                f"EXISTS (SELECT 1 FROM conversation_participant p "
                f"WHERE p.conversation_id = c.id AND p.user_id = ANY({ids}))"
            )
    if f.last_message is not None:
        conds.append(_dates(p, "c.last_message_at", f.last_message))
    return conds or ["true"]
