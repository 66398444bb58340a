"""sync confirmation: the window, the next read-back and what differs, per item; retry history

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 17:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sync_deadline_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('sync_check_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('sync_checks', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('sync_detail', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True))
        batch_op.add_column(sa.Column('history', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.create_index('ix_items_status_sync_check', ['status', 'sync_check_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index('ix_items_status_sync_check')
        batch_op.drop_column('history')
        batch_op.drop_column('sync_detail')
        batch_op.drop_column('sync_checks')
        batch_op.drop_column('sync_check_at')
        batch_op.drop_column('sync_deadline_at')
