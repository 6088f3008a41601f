"""Query paths of the REST API's lists: a conversation's active-message count, deletions by
conversation, an index that pages a conversation's active messages without the table.

``conversation.message_count`` counts the conversation's active messages (not deleted for
everyone). Every statement that inserts a message, deletes one or changes ``is_active`` keeps
it in step, in the same statement; the messages list takes its ``totalRowCount`` from it less
the viewer's own deletions (``message_deletion`` by ``(user_id, conversation_id)``) instead of
counting the conversation on every page.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE conversation ADD COLUMN message_count integer NOT NULL DEFAULT 0;
    UPDATE conversation c SET message_count = s.n
    FROM (SELECT conversation_id, count(*) AS n FROM message WHERE is_active
          GROUP BY conversation_id) s
    WHERE c.id = s.conversation_id;

    ALTER TABLE message_deletion ADD COLUMN conversation_id uuid;
    UPDATE message_deletion d SET conversation_id = m.conversation_id
    FROM message m WHERE m.id = d.message_id;
    ALTER TABLE message_deletion ALTER COLUMN conversation_id SET NOT NULL;
    CREATE INDEX message_deletion_user_conversation_idx
        ON message_deletion (user_id, conversation_id) INCLUDE (message_id);

    -- The same keys, with is_active carried in the index: a page of active messages at any
    -- OFFSET is an index-only walk (the heap is read for the page's rows only).
    CREATE INDEX message_conversation_sent_active_idx
        ON message (conversation_id, sent_at, id) INCLUDE (is_active);
    DROP INDEX message_conversation_sent_idx;
    ALTER INDEX message_conversation_sent_active_idx RENAME TO message_conversation_sent_idx;
    """)


def downgrade() -> None:
    execute_script("""
    CREATE INDEX message_conversation_sent_plain_idx ON message (conversation_id, sent_at, id);
    DROP INDEX message_conversation_sent_idx;
    ALTER INDEX message_conversation_sent_plain_idx RENAME TO message_conversation_sent_idx;
    DROP INDEX message_deletion_user_conversation_idx;
    ALTER TABLE message_deletion DROP COLUMN conversation_id;
    ALTER TABLE conversation DROP COLUMN message_count;
    """)
