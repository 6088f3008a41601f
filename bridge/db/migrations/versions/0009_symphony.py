"""Symphony (seed 000): every network user gets a numeric id (an identity column: assigned once
from its sequence, never reused, never set by hand); company certificates, the trust store of
certificate authentication, keyed by their SHA-256 fingerprint; the session tokens that
certificate authentication issued, so that a logout revokes one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE network_user
        ADD COLUMN number bigint GENERATED ALWAYS AS IDENTITY (NO CYCLE) UNIQUE;

    CREATE TABLE company_cert (
        fingerprint        text        PRIMARY KEY CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
        pem                text        NOT NULL,
        name               text        NOT NULL,
        type               text        NOT NULL CHECK (type IN
                               ('USERSIGNING', 'USER', 'OPERATIONSSIGNING', 'OPERATIONSUSER')),
        status             text        NOT NULL CHECK (status IN
                               ('TRUSTED', 'KNOWN', 'REVOKED', 'DISABLED')),
        common_name        text        NOT NULL,
        subject_der        bytea       NOT NULL,
        issuer_der         bytea       NOT NULL,
        issuer_fingerprint text        REFERENCES company_cert (fingerprint) ON DELETE SET NULL,
        not_after          timestamptz NOT NULL,
        last_seen          timestamptz,
        updated_at         timestamptz NOT NULL DEFAULT now(),
        updated_by         bigint,
        created_at         timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX company_cert_subject_idx ON company_cert (subject_der);
    CREATE INDEX company_cert_issuer_idx ON company_cert (issuer_der);
    CREATE INDEX company_cert_issued_by_idx ON company_cert (issuer_fingerprint);
    CREATE INDEX company_cert_list_idx ON company_cert (created_at, fingerprint);

    CREATE TABLE symphony_session (
        id          uuid        PRIMARY KEY,
        user_id     uuid        NOT NULL REFERENCES network_user (id) ON DELETE CASCADE,
        fingerprint text        NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL,
        revoked_at  timestamptz
    );
    CREATE INDEX symphony_session_user_idx ON symphony_session (user_id, expires_at);
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE symphony_session;
    DROP TABLE company_cert;
    ALTER TABLE network_user DROP COLUMN number;
    """)
