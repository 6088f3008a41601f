"""Foundation: transactions, the inbox and its lanes, dead letters, the outbox, ghosts, portals.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    -- Transactions received from the homeserver. A record, not proof of "seen": Synapse on
    -- SQLite restarts its txn ids at 1, so the key includes a digest of the body, and events
    -- are deduplicated by event id in the inbox.
    CREATE TABLE appservice_txn (
        txn_id       text        NOT NULL,
        body_sha256  bytea       NOT NULL,
        event_count  integer     NOT NULL,
        received_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (txn_id, body_sha256)
    );

    -- Every PDU and EDU received, committed before the homeserver gets its 200.
    CREATE TABLE inbox (
        id            bigserial   PRIMARY KEY,           -- arrival order
        event_id      text        NOT NULL UNIQUE,       -- PDU event id, or a derived EDU key
        lane          text        NOT NULL,              -- room id; '' outside any room
        kind          text        NOT NULL CHECK (kind IN ('pdu', 'edu')),
        event_type    text        NOT NULL,
        sender        text,
        txn_id        text        NOT NULL,
        event         jsonb       NOT NULL,
        received_at   timestamptz NOT NULL DEFAULT now(),
        state         text        NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'processed', 'ignored', 'dead')),
        attempts      integer     NOT NULL DEFAULT 0,
        last_error    text,
        processed_at  timestamptz
    );
    CREATE INDEX inbox_pending_idx ON inbox (lane, id) WHERE state = 'pending';
    CREATE INDEX inbox_processed_at_idx ON inbox (processed_at) WHERE processed_at IS NOT NULL;

    -- One row per room with pending inbox events. A worker claims a lane with a transaction-
    -- scoped advisory lock (so intake never waits on a worker's batch), which keeps each room's
    -- events in order while rooms are processed in parallel. Intake bumps `seq`; a worker drops
    -- the row only if `seq` is still what it claimed, so no event is ever left without a lane.
    CREATE TABLE inbox_lane (
        lane        text        PRIMARY KEY,
        not_before  timestamptz NOT NULL DEFAULT now(),
        seq         bigint      NOT NULL DEFAULT 0
    );
    CREATE INDEX inbox_lane_not_before_idx ON inbox_lane (not_before);

    -- Events that could not be taken in or processed, with the reason. Nothing is dropped.
    CREATE TABLE dead_letter (
        id          bigserial   PRIMARY KEY,
        source      text        NOT NULL CHECK (source IN ('intake', 'inbox', 'outbox')),
        dedupe_key  text        NOT NULL UNIQUE,
        event_id    text,
        room_id     text,
        txn_id      text,
        payload     jsonb       NOT NULL,
        error       text        NOT NULL,
        attempts    integer     NOT NULL DEFAULT 0,
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX dead_letter_created_at_idx ON dead_letter (created_at);

    -- Matrix side effects, written in the same DB transaction as the domain change and sent
    -- in order per lane (room). The /send transaction id is derived from the row id.
    CREATE TABLE outbox (
        id          bigserial   PRIMARY KEY,
        lane        text        NOT NULL,
        sender      text        NOT NULL,   -- MXID acting: the bot or a ghost
        action      text        NOT NULL,
        payload     jsonb       NOT NULL,
        state       text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'dead')),
        attempts    integer     NOT NULL DEFAULT 0,
        last_error  text,
        result      jsonb,
        created_at  timestamptz NOT NULL DEFAULT now(),
        sent_at     timestamptz
    );
    CREATE INDEX outbox_pending_idx ON outbox (lane, id) WHERE state = 'pending';

    CREATE TABLE outbox_lane (
        lane        text        PRIMARY KEY,
        not_before  timestamptz NOT NULL DEFAULT now(),
        seq         bigint      NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_lane_not_before_idx ON outbox_lane (not_before);

    -- Matrix puppets of network users.
    CREATE TABLE ghost (
        user_id           text        PRIMARY KEY,
        network_user_id   uuid        NOT NULL UNIQUE,
        displayname       text,
        avatar_url        text,
        registered_at     timestamptz,
        profile_synced_at timestamptz
    );

    -- Matrix rooms of network conversations.
    CREATE TABLE portal (
        room_id          text        PRIMARY KEY,
        conversation_id  uuid        NOT NULL UNIQUE,
        alias            text        UNIQUE,
        created_at       timestamptz NOT NULL DEFAULT now()
    );
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE portal;
    DROP TABLE ghost;
    DROP TABLE outbox_lane;
    DROP TABLE outbox;
    DROP TABLE dead_letter;
    DROP TABLE inbox_lane;
    DROP TABLE inbox;
    DROP TABLE appservice_txn;
    """)
