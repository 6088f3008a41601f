"""Changes to network users notified to every bridge process.

An update or deletion of a ``network_user`` row notifies channel ``bridge_user`` with the
user's id (a truncation notifies ``*``), delivered on commit. REST processes keep the token
users they resolved in memory (``bridge.users.cache``) and drop them when notified, whoever
made the change: another bridge process, an operator's statement, a migration.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from bridge.db.sql_script import execute_script

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE FUNCTION bridge_notify_user() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            PERFORM pg_notify('bridge_user', '*');
        ELSE
            PERFORM pg_notify('bridge_user', OLD.id::text);
        END IF;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER network_user_notify AFTER UPDATE OR DELETE ON network_user
        FOR EACH ROW EXECUTE FUNCTION bridge_notify_user();
    CREATE TRIGGER network_user_truncate_notify AFTER TRUNCATE ON network_user
        FOR EACH STATEMENT EXECUTE FUNCTION bridge_notify_user();
    """)


def downgrade() -> None:
    execute_script("""
    DROP TRIGGER network_user_truncate_notify ON network_user;
    DROP TRIGGER network_user_notify ON network_user;
    DROP FUNCTION bridge_notify_user();
    """)
