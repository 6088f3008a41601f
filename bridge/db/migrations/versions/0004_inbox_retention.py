"""Retention: finished inbox and outbox rows and transaction records are purged after
``keep_days``. Inbox and outbox rows are found in arrival (primary key) order, so the index on
``inbox.processed_at`` goes (nothing reads it, and every processed event paid for an entry in
it); transaction records get an index on ``received_at`` (one entry per transaction).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    DROP INDEX inbox_processed_at_idx;
    CREATE INDEX appservice_txn_received_idx ON appservice_txn (received_at);
    """)


def downgrade() -> None:
    execute_script("""
    DROP INDEX appservice_txn_received_idx;
    CREATE INDEX inbox_processed_at_idx ON inbox (processed_at) WHERE processed_at IS NOT NULL;
    """)
