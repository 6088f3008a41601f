"""A conversation's messages index carries the sender too: ``unreadBy``'s total is index-only.

``GET /messaging-api/v1/messages?unreadBy=<user>`` answers the exact number of messages that
user has not read (past their read marker, not their own): a range of the
``(conversation_id, sent_at, id)`` index. The index carried ``is_active`` only, so the count
read every row of the range from the table for its sender; with ``sender_id`` included the
count is an index-only walk, as the plain total already was.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE INDEX message_conversation_sent_sender_idx
        ON message (conversation_id, sent_at, id) INCLUDE (is_active, sender_id);
    DROP INDEX message_conversation_sent_idx;
    ALTER INDEX message_conversation_sent_sender_idx RENAME TO message_conversation_sent_idx;
    """)


def downgrade() -> None:
    execute_script("""
    CREATE INDEX message_conversation_sent_active_idx
        ON message (conversation_id, sent_at, id) INCLUDE (is_active);
    DROP INDEX message_conversation_sent_idx;
    ALTER INDEX message_conversation_sent_active_idx RENAME TO message_conversation_sent_idx;
    """)
