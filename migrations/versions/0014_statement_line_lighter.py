"""statement_line: lighter to write 100k lines at a time (no org_id index of its own, no per-row foreign keys)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 03:55:00

The import of a 100k-line statement spent 4.6 s of its 11 s inserting lines: six indexes and
three per-row foreign-key checks (0.9 s each; the payment one also rewrote every matched
payment's tuple). ix_statement_line_org_id repeats the leading column of the unique
(org_id, fingerprint) index, and ix_statement_line_reference served no query (lines are
looked up within their import, by the import index). The keys are dropped: the only writer is reconciliation's INSERT,
with the locked import's own org and id and payment ids just read from payment, and none of
those parents is ever deleted (see app/models/reconciliation.py).
"""
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index(op.f('ix_statement_line_org_id'), table_name='statement_line')
    op.drop_index('ix_statement_line_reference', table_name='statement_line')
    for fk in ('fk_statement_line_payment_id_payment', 'fk_statement_line_import_id_statement_import',
               'fk_statement_line_org_id_organization'):
        op.drop_constraint(op.f(fk), 'statement_line', type_='foreignkey')


def downgrade():
    op.create_foreign_key(op.f('fk_statement_line_org_id_organization'), 'statement_line', 'organization', ['org_id'],
                          ['id'], ondelete='RESTRICT')
    op.create_foreign_key(op.f('fk_statement_line_import_id_statement_import'), 'statement_line', 'statement_import',
                          ['import_id'], ['id'])
    op.create_foreign_key(op.f('fk_statement_line_payment_id_payment'), 'statement_line', 'payment', ['payment_id'], ['id'])
    op.create_index('ix_statement_line_reference', 'statement_line', ['org_id', 'reference'], unique=False)
    op.create_index(op.f('ix_statement_line_org_id'), 'statement_line', ['org_id'], unique=False)
