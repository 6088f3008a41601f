"""Waiting invites: a ghost invited to a Matrix group room that cannot join yet, because its
network user is not a connection of the inviter (a connection request is pending) or because
the room's group would have fewer than three participants. The ghost joins when that changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE TABLE waiting_invite (
        room_id      text        NOT NULL,
        user_id      uuid        NOT NULL REFERENCES network_user (id) ON DELETE CASCADE,
        inviter_id   uuid        NOT NULL REFERENCES network_user (id) ON DELETE CASCADE,
        inviter      text        NOT NULL,   -- the inviter's MXID
        invited_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (room_id, user_id)
    );
    CREATE INDEX waiting_invite_pair_idx ON waiting_invite (inviter_id, user_id);
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE waiting_invite;
    """)
