"""Operations: the homeserver's transaction ids watched for gaps, dead letters replayed, admin
links and sessions for the status page.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    -- The highest integer transaction id of the homeserver's current run (one row).
    CREATE TABLE txn_watch (
        id          integer     PRIMARY KEY CHECK (id = 1),
        high        bigint,
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO txn_watch (id) VALUES (1);

    -- A transaction id the homeserver skipped. 'open' until it arrives; 'due' once the grace
    -- period passed (the next transaction is refused, so the homeserver resends the oldest
    -- unsent first); 'forced' once refused; 'healed' when it arrived; 'given_up' when it did
    -- not arrive after the forced retry either.
    CREATE TABLE txn_gap (
        id           bigserial   PRIMARY KEY,
        missing_id   bigint      NOT NULL,
        after_txn    text        NOT NULL,
        state        text        NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'due', 'forced', 'healed', 'given_up')),
        detected_at  timestamptz NOT NULL DEFAULT now(),
        forced_at    timestamptz,
        forced_txn   text,
        closed_at    timestamptz
    );
    CREATE UNIQUE INDEX txn_gap_unresolved_idx ON txn_gap (missing_id)
        WHERE state IN ('open', 'due', 'forced');
    CREATE INDEX txn_gap_detected_idx ON txn_gap (detected_at);

    ALTER TABLE dead_letter ADD COLUMN replayed_at timestamptz;

    -- One-time admin links and the sessions they open, by the SHA-256 of their secret.
    CREATE TABLE admin_token (
        token_sha256  bytea       PRIMARY KEY,
        kind          text        NOT NULL CHECK (kind IN ('link', 'session')),
        csrf          text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        expires_at    timestamptz NOT NULL,
        used_at       timestamptz
    );
    CREATE INDEX admin_token_expires_idx ON admin_token (expires_at);
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE admin_token;
    ALTER TABLE dead_letter DROP COLUMN replayed_at;
    DROP TABLE txn_gap;
    DROP TABLE txn_watch;
    """)
