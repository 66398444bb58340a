"""self-healing: publications and due time per item, measured read-back, markers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 13:30:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('markers',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('publications', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('visible_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_items_connection_visible', ['connection_id', 'visible_at'], unique=False)
        batch_op.create_index('ix_items_create_sent_at', ['create_sent_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index('ix_items_create_sent_at')
        batch_op.drop_index('ix_items_connection_visible')
        batch_op.drop_column('visible_at')
        batch_op.drop_column('publications')
        batch_op.drop_column('due_at')
    op.drop_table('markers')
