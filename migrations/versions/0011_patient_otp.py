"""patient portal: one-time passwords (hashed) for login by mobile

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 01:40:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'patient_otp',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('mobile', sa.String(length=16), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('invalidated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('requested_ip_hash', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('org_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_patient_otp_org_id_organization'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_otp')),
    )
    op.create_index(op.f('ix_patient_otp_org_id'), 'patient_otp', ['org_id'], unique=False)
    op.create_index('ix_patient_otp_org_mobile_created', 'patient_otp', ['org_id', 'mobile', 'created_at'],
                    unique=False)


def downgrade():
    op.drop_index('ix_patient_otp_org_mobile_created', table_name='patient_otp')
    op.drop_index(op.f('ix_patient_otp_org_id'), table_name='patient_otp')
    op.drop_table('patient_otp')
