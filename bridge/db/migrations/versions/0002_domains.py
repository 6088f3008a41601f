"""Domains: network users, messaging, networking, notifications; management rooms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    -- People of the network. Matrix users who talk through the bridge get one, linked by MXID.
    CREATE TABLE network_user (
        id              uuid        PRIMARY KEY,
        display_name    text        NOT NULL,
        avatar_url      text,
        matrix_user_id  text        UNIQUE,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX network_user_display_name_idx ON network_user (lower(display_name));

    CREATE TABLE conversation (
        id               uuid        PRIMARY KEY,
        is_group         boolean     NOT NULL,
        title            text,
        topic            text,
        created_by       uuid        REFERENCES network_user (id),
        -- 1:1 conversations: "<lower uuid>:<higher uuid>", one conversation per pair.
        direct_key       text        UNIQUE,
        created_at       timestamptz NOT NULL DEFAULT now(),
        last_message_at  timestamptz,
        CHECK (is_group = (direct_key IS NULL))
    );

    CREATE TABLE conversation_participant (
        conversation_id  uuid        NOT NULL REFERENCES conversation (id) ON DELETE CASCADE,
        user_id          uuid        NOT NULL REFERENCES network_user (id),
        joined_at        timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (conversation_id, user_id)
    );
    CREATE INDEX conversation_participant_user_idx
        ON conversation_participant (user_id, conversation_id);

    CREATE TABLE message (
        id                   uuid        PRIMARY KEY,
        conversation_id      uuid        NOT NULL REFERENCES conversation (id) ON DELETE CASCADE,
        sender_id            uuid        NOT NULL REFERENCES network_user (id),
        content              text        NOT NULL,
        format               text,       -- 'org.matrix.custom.html' when formatted_content is set
        formatted_content    text,       -- sanitised HTML
        msgtype              text        NOT NULL DEFAULT 'm.text',
        media                jsonb,      -- {"url": "mxc://...", "info": {...}, "filename": ...}
        reply_to_message_id  uuid        REFERENCES message (id) ON DELETE SET NULL,
        mentions             uuid[]      NOT NULL DEFAULT '{}',
        sent_at              timestamptz NOT NULL,
        edited_at            timestamptz,
        is_active            boolean     NOT NULL DEFAULT true,
        record_version       integer     NOT NULL DEFAULT 1,
        origin               text        NOT NULL CHECK (origin IN ('matrix', 'network')),
        -- The Matrix event: the source of a Matrix-originated message, or the event the
        -- bridge sent for a network-originated one (filled in once sent).
        event_id             text        UNIQUE
    );
    CREATE INDEX message_conversation_sent_idx ON message (conversation_id, sent_at, id);
    CREATE INDEX message_sender_idx ON message (sender_id, sent_at);

    -- Matrix events that touched a message (edits), so their redaction or echo maps back.
    CREATE TABLE message_event (
        event_id    text        PRIMARY KEY,
        message_id  uuid        NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        kind        text        NOT NULL CHECK (kind IN ('edit'))
    );

    CREATE TABLE message_deletion (
        message_id  uuid        NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        user_id     uuid        NOT NULL REFERENCES network_user (id),
        deleted_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (message_id, user_id)
    );

    CREATE TABLE reaction (
        id          uuid        PRIMARY KEY,
        message_id  uuid        NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        user_id     uuid        NOT NULL REFERENCES network_user (id),
        key         text        NOT NULL,
        event_id    text        UNIQUE,
        created_at  timestamptz NOT NULL DEFAULT now(),
        UNIQUE (message_id, user_id, key)
    );

    -- A reader's position in a conversation; readBy is derived from these.
    CREATE TABLE read_marker (
        conversation_id  uuid        NOT NULL REFERENCES conversation (id) ON DELETE CASCADE,
        user_id          uuid        NOT NULL REFERENCES network_user (id),
        message_id       uuid        NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        read_up_to       timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (conversation_id, user_id)
    );

    CREATE TABLE connection_request (
        id                  uuid        PRIMARY KEY,
        sender_id           uuid        NOT NULL REFERENCES network_user (id),
        receiver_id         uuid        NOT NULL REFERENCES network_user (id),
        status              text        NOT NULL
                            CHECK (status IN ('pending', 'accepted', 'rejected', 'cancelled')),
        message             text,
        first_requested_at  timestamptz NOT NULL DEFAULT now(),
        sent_at             timestamptz NOT NULL DEFAULT now(),
        request_counter     integer     NOT NULL DEFAULT 1,
        responded_at        timestamptz,
        room_id             text,       -- the Matrix direct room the request lives in
        CHECK (sender_id <> receiver_id)
    );
    -- At most one pending request per unordered pair.
    CREATE UNIQUE INDEX connection_request_pending_pair_idx
        ON connection_request (LEAST(sender_id, receiver_id), GREATEST(sender_id, receiver_id))
        WHERE status = 'pending';
    CREATE INDEX connection_request_receiver_idx ON connection_request (receiver_id, status);
    CREATE INDEX connection_request_sender_idx ON connection_request (sender_id, status);

    -- One row per unordered pair (user_low < user_high).
    CREATE TABLE connection (
        id               uuid        PRIMARY KEY,
        user_low         uuid        NOT NULL REFERENCES network_user (id),
        user_high        uuid        NOT NULL REFERENCES network_user (id),
        connected_since  timestamptz NOT NULL DEFAULT now(),
        UNIQUE (user_low, user_high),
        CHECK (user_low < user_high)
    );
    CREATE INDEX connection_user_high_idx ON connection (user_high);

    CREATE TABLE notification (
        id          uuid        PRIMARY KEY,
        user_id     uuid        NOT NULL REFERENCES network_user (id),
        kind        text        NOT NULL,
        title       text        NOT NULL,
        body        text        NOT NULL,
        payload     jsonb       NOT NULL DEFAULT '{}',
        created_at  timestamptz NOT NULL DEFAULT now(),
        seen_at     timestamptz
    );
    CREATE INDEX notification_user_created_idx ON notification (user_id, created_at DESC, id DESC);

    CREATE TABLE device (
        id          uuid        PRIMARY KEY,
        user_id     uuid        NOT NULL REFERENCES network_user (id),
        token       text        NOT NULL,
        platform    text        NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        UNIQUE (user_id, token)
    );

    -- A Matrix user's direct room with the bridge bot.
    CREATE TABLE management_room (
        user_id     text        PRIMARY KEY,
        room_id     text        NOT NULL UNIQUE,
        created_at  timestamptz NOT NULL DEFAULT now()
    );

    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE management_room;
    DROP TABLE device;
    DROP TABLE notification;
    DROP TABLE connection;
    DROP TABLE connection_request;
    DROP TABLE read_marker;
    DROP TABLE reaction;
    DROP TABLE message_deletion;
    DROP TABLE message_event;
    DROP TABLE message;
    DROP TABLE conversation_participant;
    DROP TABLE conversation;
    DROP TABLE network_user;
    """)
