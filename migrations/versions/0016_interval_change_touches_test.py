"""reference_interval: any change touches its test's updated_at (a per-process interval cache keys on it)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 20:15:00

Result saves read a test's reference intervals from a cache kept in each process, keyed by
(test id, lab_test.updated_at) (app/services/results.py, intervals_of). A trigger, not the
admin screens, moves updated_at: every path that changes an interval (the admin pages, the
catalogue seed, a hand-written UPDATE during an incident) invalidates the cache, so a result
is never flagged against an interval that no longer exists.
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE FUNCTION reference_interval_touch_test() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- clock_timestamp(), not now(): two transactions never hand out the same stamp
            -- for different interval sets, even when they started in the same microsecond.
            UPDATE lab_test SET updated_at = clock_timestamp()
            WHERE id IN (SELECT CASE WHEN TG_OP = 'DELETE' THEN OLD.test_id ELSE NEW.test_id END
                         UNION
                         SELECT CASE WHEN TG_OP = 'UPDATE' THEN OLD.test_id END);
            RETURN NULL;
        END
        $$;
    """)
    op.execute("""
        CREATE TRIGGER reference_interval_touch_test
        AFTER INSERT OR UPDATE OR DELETE ON reference_interval
        FOR EACH ROW EXECUTE FUNCTION reference_interval_touch_test();
    """)


def downgrade():
    op.execute("DROP TRIGGER reference_interval_touch_test ON reference_interval")
    op.execute("DROP FUNCTION reference_interval_touch_test()")
