"""notifications: outbox rows, raw webhook deliveries, WhatsApp 24-hour windows, referrer opt-in

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 01:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'notification',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('template', sa.String(length=80), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('idempotency_key', sa.String(length=120), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('provider_message_id', sa.String(length=128), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('org_id', sa.BigInteger(), nullable=False),
        sa.CheckConstraint("channel IN ('whatsapp','sms','email','outbox')", name=op.f('ck_notification_channel')),
        sa.CheckConstraint("status IN ('queued','sending','sent','delivered','read','failed','outbox')",
                           name=op.f('ck_notification_status')),
        sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_notification_org_id_organization'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification')),
        sa.UniqueConstraint('org_id', 'idempotency_key', name=op.f('uq_notification_org_id_idempotency_key')),
    )
    op.create_index('ix_notification_due', 'notification', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("status = 'queued'"))
    op.create_index('ix_notification_org_created', 'notification', ['org_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_notification_org_id'), 'notification', ['org_id'], unique=False)
    op.create_index('ix_notification_provider_message_id', 'notification', ['provider_message_id'], unique=False)
    op.create_table(
        'webhook_delivery',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('body_sha256', sa.String(length=64), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery')),
        sa.UniqueConstraint('provider', 'body_sha256', name=op.f('uq_webhook_delivery_provider_body_sha256')),
    )
    op.create_table(
        'whatsapp_window',
        sa.Column('wa_id', sa.String(length=20), nullable=False),
        sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('wa_id', name=op.f('pk_whatsapp_window')),
    )
    op.add_column('referrer', sa.Column('notify_reports', sa.Boolean(), server_default=sa.text('false'),
                                        nullable=False))


def downgrade():
    op.drop_column('referrer', 'notify_reports')
    op.drop_table('whatsapp_window')
    op.drop_table('webhook_delivery')
    op.drop_index('ix_notification_provider_message_id', table_name='notification')
    op.drop_index(op.f('ix_notification_org_id'), table_name='notification')
    op.drop_index('ix_notification_org_created', table_name='notification')
    op.drop_index('ix_notification_due', table_name='notification', postgresql_where=sa.text("status = 'queued'"))
    op.drop_table('notification')
