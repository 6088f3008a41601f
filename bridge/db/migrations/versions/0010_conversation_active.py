"""Conversations can be deleted: a 1:1 deleted by either participant is inactive for both
(no longer listed, no new messages) and gives up its direct key, so the pair may open a new one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE conversation ADD COLUMN is_active boolean NOT NULL DEFAULT true;
    -- A deleted 1:1 keeps no direct key: the pair's next 1:1 takes it.
    ALTER TABLE conversation DROP CONSTRAINT conversation_check;
    ALTER TABLE conversation ADD CONSTRAINT conversation_direct_key_check
        CHECK (is_group = (direct_key IS NULL) OR (NOT is_active AND direct_key IS NULL));
    """)


def downgrade() -> None:
    # Deleted conversations are kept (their messages are history) and show as active again.
    execute_script("""
    ALTER TABLE conversation DROP CONSTRAINT conversation_direct_key_check;
    ALTER TABLE conversation DROP COLUMN is_active;
    ALTER TABLE conversation ADD CONSTRAINT conversation_check
        CHECK (is_group = (direct_key IS NULL)) NOT VALID;
    """)
