"""partner connections: kind and organization of a connection, OAuth grants, pending consents

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 22:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False, server_default='custom')
        )
        batch_op.add_column(sa.Column('organization_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('organization_name', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True))
    op.create_table(
        'grants',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('connection_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=True),
        sa.Column('sub', sa.BigInteger(), nullable=True),
        sa.Column('user_role', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('granted_scopes', sa.JSON(), nullable=False),
        sa.Column('refresh_token_encrypted', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column('access_token_encrypted', sqlmodel.sql.sqltypes.AutoString(length=8000), nullable=False),
        sa.Column('access_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('refreshed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column('since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['connection_id'], ['connections.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('connection_id', 'user_id', name='uq_grants_connection_user'),
    )
    op.create_index(op.f('ix_grants_connection_id'), 'grants', ['connection_id'], unique=False)
    op.create_table(
        'consent_requests',
        sa.Column('state_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('connection_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('client_secret_encrypted', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column('redirect_uri', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column('options', sa.JSON(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('state_hash'),
    )


def downgrade() -> None:
    op.drop_table('consent_requests')
    op.drop_index(op.f('ix_grants_connection_id'), table_name='grants')
    op.drop_table('grants')
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('organization_name')
        batch_op.drop_column('organization_id')
        batch_op.drop_column('kind')
