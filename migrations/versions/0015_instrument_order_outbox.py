"""instrument_order: the outbox of orders pushed to HL7 analyzers (ORM^O01 on tube receipt)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-22 05:00:00

Rows are queued with the tube's receipt and sent by the listener process on the analyzer's
own MLLP connection; the ACK is recorded on the row (app/models/instrument_order.py).
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'instrument_order',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('instrument_id', sa.BigInteger(), nullable=False),
        sa.Column('sample_id', sa.BigInteger(), nullable=False),
        sa.Column('control_id', sa.String(length=32), nullable=False),
        sa.Column('message_type', sa.String(length=16), nullable=False),
        sa.Column('test_codes', sa.Text(), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ack_code', sa.String(length=2), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('ack_message_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('org_id', sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('queued','acked','failed','superseded')",
                           name=op.f('ck_instrument_order_status')),
        sa.ForeignKeyConstraint(['ack_message_id'], ['instrument_message.id'],
                                name=op.f('fk_instrument_order_ack_message_id_instrument_message')),
        sa.ForeignKeyConstraint(['instrument_id'], ['instrument.id'],
                                name=op.f('fk_instrument_order_instrument_id_instrument'), ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['org_id'], ['organization.id'],
                                name=op.f('fk_instrument_order_org_id_organization'), ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['sample_id'], ['sample.id'],
                                name=op.f('fk_instrument_order_sample_id_sample'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_instrument_order')),
        sa.UniqueConstraint('control_id', name=op.f('uq_instrument_order_control_id')),
    )
    op.create_index('ix_instrument_order_due', 'instrument_order', ['instrument_id', 'next_attempt_at'],
                    unique=False, postgresql_where=sa.text("status = 'queued'"))
    op.create_index(op.f('ix_instrument_order_org_id'), 'instrument_order', ['org_id'], unique=False)
    op.create_index('ix_instrument_order_sample', 'instrument_order', ['sample_id', 'instrument_id'], unique=False)


def downgrade():
    op.drop_index('ix_instrument_order_sample', table_name='instrument_order')
    op.drop_index(op.f('ix_instrument_order_org_id'), table_name='instrument_order')
    op.drop_index('ix_instrument_order_due', table_name='instrument_order')
    op.drop_table('instrument_order')
