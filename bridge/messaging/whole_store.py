"""The SQL of ``pageNumber=0`` for conversations and messages: every row of a REST list.

The same filters and order as the paged lists (:mod:`bridge.messaging.queries`), as one count
and one ordered statement read through a server-side cursor (see
:func:`bridge.listing.read_whole`); the caller holds the snapshot both run in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from ..listing import Position, WholeList, read_whole
from .filters import ConversationFilter, MessageFilter
from .models import Conversation, Message
from .queries import _conversation_filters, _message_filters, _Params
from .store import _CONVERSATION, _MESSAGE, _conversation, _message


class MessagingWholeLists:
    """Whole lists of the REST API (reads only)."""

    async def messages(
        self,
        conn: asyncpg.Connection,
        viewer_id: uuid.UUID,
        conversation_ids: Sequence[uuid.UUID],
        filters: MessageFilter,
        *,
        after: Position | None = None,
    ) -> WholeList[Message]:
        """Every message of ``conversation_ids`` the viewer sees, in ``(sentAt, id)`` order
        (past ``after`` when given), with the filters of the paged list."""
        p = _Params()
        scope, conds = _message_filters(p, viewer_id, conversation_ids, filters)
        if after is not None:
            conds.append(
                f"(m.sent_at, m.id) > ({p(after[0], 'timestamptz')}, {p(after[1], 'uuid')})"
            )
        match = "=" if len(conversation_ids) == 1 else "= ANY"
        where = f"m.conversation_id {match}({scope}) AND {' AND '.join(conds)}"
        return await read_whole(
            conn,
            f"SELECT count(*) FROM message m WHERE {where}",
            f"SELECT {_MESSAGE} FROM message m WHERE {where} ORDER BY m.sent_at, m.id",
            p.values,
            _message,
        )

    async def conversations(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        filters: ConversationFilter,
    ) -> WholeList[Conversation]:
        """Every conversation of the user matching the filters, most recently active first."""
        p = _Params()
        user = p(user_id, "uuid")
        conds = _conversation_filters(p, filters)
        source = (
            "FROM conversation_participant mine JOIN conversation c "
            f"ON c.id = mine.conversation_id WHERE mine.user_id = {user} AND " + " AND ".join(conds)
        )
        return await read_whole(
            conn,
            f"SELECT count(*) {source}",
            f"SELECT {_CONVERSATION} {source} "
            "ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC",
            p.values,
            _conversation,
        )
