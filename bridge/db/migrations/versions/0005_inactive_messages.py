"""The messages deleted for everyone, by conversation: a small partial index, so a messages
list's total (the conversation's active count less the viewer's deletions of active messages)
checks the few inactive messages instead of every message the viewer hid.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE INDEX message_inactive_idx ON message (conversation_id) WHERE NOT is_active;
    """)


def downgrade() -> None:
    execute_script("""
    DROP INDEX message_inactive_idx;
    """)
