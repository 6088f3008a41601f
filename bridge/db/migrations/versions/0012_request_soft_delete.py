"""Connection requests remember being deleted (the reference's soft delete).

"Sender or receiver may cancel/delete a connection request (soft-delete)": a DELETE by either
party stamps ``deleted_at`` (the request's ``isActive`` is false from then on) besides setting
its status (``cancelled`` by the sender, ``rejected`` by the receiver). A receiver's plain
rejection (an answer, not a deletion) leaves the request active. Requests cancelled before this
revision were withdrawn by their sender, so they count as deleted at their answer time.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE connection_request ADD COLUMN deleted_at timestamptz;
    UPDATE connection_request SET deleted_at = COALESCE(responded_at, sent_at)
        WHERE status = 'cancelled';
    ALTER TABLE connection_request
        ADD CONSTRAINT connection_request_deleted_answered
        CHECK (deleted_at IS NULL OR status <> 'pending');
    """)


def downgrade() -> None:
    execute_script("""
    ALTER TABLE connection_request DROP CONSTRAINT connection_request_deleted_answered;
    ALTER TABLE connection_request DROP COLUMN deleted_at;
    """)
