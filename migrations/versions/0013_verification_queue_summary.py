"""verification queue: per-order counts of results waiting, kept by a trigger on result

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 03:45:00

The queue used to aggregate every waiting result of every order on each load (60 ms with
500 orders waiting, growing with the backlog). Now each order carries its own counts, kept
by the database whenever a result row changes, and the queue reads only orders with
something waiting, through a partial index.
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# Critical first, then STAT, urgent, routine (as app.models.order.VERIFY_RANK_SQL).
VERIFY_RANK = ("CASE WHEN verify_criticals > 0 THEN 0 ELSE 10 END"
               " + CASE priority WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END")

REFRESH = """
CREATE OR REPLACE FUNCTION lab_order_refresh_verification() RETURNS trigger AS $$
DECLARE
    target bigint;
BEGIN
    FOR target IN
        SELECT DISTINCT ot.order_id FROM order_test ot
        WHERE ot.id IN (
            SELECT CASE WHEN TG_OP = 'DELETE' THEN OLD.order_test_id ELSE NEW.order_test_id END
            UNION
            SELECT CASE WHEN TG_OP = 'UPDATE' THEN OLD.order_test_id END)
    LOOP
        UPDATE lab_order o
        SET verify_waiting = s.waiting, verify_criticals = s.criticals, verify_deltas = s.deltas
        FROM (SELECT count(*) AS waiting,
                     count(*) FILTER (WHERE r.critical) AS criticals,
                     count(*) FILTER (WHERE (r.delta ->> 'failed')::boolean) AS deltas
              FROM result r JOIN order_test ot ON ot.id = r.order_test_id
              WHERE ot.order_id = target AND r.is_current AND r.status = 'entered') s
        WHERE o.id = target
          AND (o.verify_waiting, o.verify_criticals, o.verify_deltas) IS DISTINCT FROM (s.waiting, s.criticals, s.deltas);
    END LOOP;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def upgrade():
    with op.batch_alter_table('lab_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verify_waiting', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('verify_criticals', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('verify_deltas', sa.Integer(), server_default='0', nullable=False))
    op.execute(REFRESH)
    op.execute("""
        CREATE TRIGGER result_refresh_verification
        AFTER INSERT OR DELETE OR UPDATE OF status, is_current, critical, delta, order_test_id ON result
        FOR EACH ROW EXECUTE FUNCTION lab_order_refresh_verification()
    """)
    op.execute("""
        UPDATE lab_order o SET verify_waiting = s.waiting, verify_criticals = s.criticals, verify_deltas = s.deltas
        FROM (SELECT ot.order_id, count(*) AS waiting, count(*) FILTER (WHERE r.critical) AS criticals,
                     count(*) FILTER (WHERE (r.delta ->> 'failed')::boolean) AS deltas
              FROM result r JOIN order_test ot ON ot.id = r.order_test_id
              WHERE r.is_current AND r.status = 'entered' GROUP BY ot.order_id) s
        WHERE o.id = s.order_id
    """)
    with op.batch_alter_table('lab_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verify_rank', sa.SmallInteger(), sa.Computed(VERIFY_RANK, persisted=True),
                                      nullable=False))
    op.create_index('ix_lab_order_verification_queue', 'lab_order', ['org_id', 'verify_rank', 'created_at'],
                    unique=False,
                    postgresql_where=sa.text('verify_waiting > 0'))


def downgrade():
    op.drop_index('ix_lab_order_verification_queue', table_name='lab_order',
                  postgresql_where=sa.text('verify_waiting > 0'))
    op.execute("DROP TRIGGER IF EXISTS result_refresh_verification ON result")
    op.execute("DROP FUNCTION IF EXISTS lab_order_refresh_verification()")
    with op.batch_alter_table('lab_order', schema=None) as batch_op:
        batch_op.drop_column('verify_rank')
        batch_op.drop_column('verify_deltas')
        batch_op.drop_column('verify_criticals')
        batch_op.drop_column('verify_waiting')
