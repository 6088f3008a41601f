"""Credentials (the seed-001 vault): one row per credential of a network user (the account),
its secret fields sealed (AES-256-GCM) in ``sealed``, its non-secret fields in
``public_config``. ``lookup_hash`` (an HMAC of an API key, of a Basic username and password, or of
an OAuth client's id and secret) finds the credential a request presents without decrypting any
row. The list's orders each have an index, so a ``start_after`` page costs the same at any depth.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE TABLE credential (
        id            uuid        PRIMARY KEY,
        owner_id      uuid        NOT NULL REFERENCES network_user (id) ON DELETE CASCADE,
        owner_type    text        NOT NULL DEFAULT 'account' CHECK (owner_type = 'account'),
        name          text        NOT NULL CHECK (name ~ '^[a-z0-9_-]{1,128}$'),
        fullname      text        NOT NULL,
        type          text        NOT NULL
                      CHECK (type IN ('aws', 'token', 'basic', 'secret', 'oauth_client')),
        managed       text        NOT NULL CHECK (managed IN ('Managed', 'Unmanaged')),
        public_config jsonb       NOT NULL DEFAULT '{}',
        sealed        jsonb       NOT NULL DEFAULT '{}',
        key_id        text        NOT NULL,
        lookup_hash   bytea,
        expires       timestamptz,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        UNIQUE (owner_id, name)
    );
    CREATE UNIQUE INDEX credential_lookup_idx ON credential (lookup_hash)
        WHERE lookup_hash IS NOT NULL;
    CREATE INDEX credential_created_idx ON credential (owner_id, created_at, name);
    CREATE INDEX credential_updated_idx ON credential (owner_id, updated_at, name);
    CREATE INDEX credential_expires_idx
        ON credential (owner_id, (COALESCE(expires, 'infinity'::timestamptz)), name);
    CREATE INDEX credential_key_idx ON credential (key_id);
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE credential;
    """)
