"""Leases on outbox lanes, and wake-ups across processes.

A sender claims an outbox lane with a lease instead of holding a DB transaction open while it
talks to the homeserver: ``lease_owner`` names the process, ``lease`` is the claim's number
from a sequence (the holder proves it still holds the lane with it; NULL when nobody does),
and ``not_before`` is the lease's expiry while it is held, so an expired lease is simply a lane
that is due again.

Committed inbox and outbox rows notify channels ``bridge_inbox`` and ``bridge_outbox`` (a
statement-level trigger each, so any writer wakes the workers of every bridge process that
LISTENs). The payload is the writer's ``application_name``, so a process can skip its own
wake-ups (it wakes its workers in memory). PostgreSQL folds identical notifications of one
transaction into one and delivers them on commit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE SEQUENCE outbox_lane_lease_seq;
    ALTER TABLE outbox_lane
        ADD COLUMN lease_owner text,
        ADD COLUMN lease bigint;

    -- The channel is the trigger's argument.
    CREATE FUNCTION bridge_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify(TG_ARGV[0], current_setting('application_name'));
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER inbox_notify AFTER INSERT ON inbox
        FOR EACH STATEMENT EXECUTE FUNCTION bridge_notify('bridge_inbox');
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION bridge_notify('bridge_outbox');
    """)


def downgrade() -> None:
    execute_script("""
    DROP TRIGGER outbox_notify ON outbox;
    DROP TRIGGER inbox_notify ON inbox;
    DROP FUNCTION bridge_notify();
    ALTER TABLE outbox_lane DROP COLUMN lease, DROP COLUMN lease_owner;
    DROP SEQUENCE outbox_lane_lease_seq;
    """)
