"""field report and field settings: what each item left out, which parts each connection sends

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 21:30:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fields', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True))
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('left_out', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_column('left_out')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('user_name')
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('fields')
