"""trials stopped early and the steps they trained; a sweep's device class; the sweeps an agent serves

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy): on SQLite a batch rebuild of `sweeps` would cascade-delete
    # its trials through the foreign key.
    op.add_column('trials', sa.Column('stopped', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('trials', sa.Column('steps', sa.Float(), nullable=True))
    op.add_column('sweeps', sa.Column('device', sa.String(length=16), server_default=sa.text("'cpu'"),
                                      nullable=False))
    op.add_column('boxes', sa.Column('serves', sa.JSON(), nullable=True))
    # What is known of the past: the steps a finished trial reported are in its metrics.
    op.execute("UPDATE trials SET steps = CAST(json_extract(metrics, '$.steps') AS REAL) "
               "WHERE status = 'succeeded'" if op.get_bind().dialect.name == "sqlite" else
               "UPDATE trials SET steps = (metrics->>'steps')::float "
               "WHERE status = 'succeeded' AND (metrics->>'steps') ~ '^[0-9.eE+-]+$'")


def downgrade() -> None:
    with op.batch_alter_table('boxes', schema=None) as batch_op:
        batch_op.drop_column('serves')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_column('steps')
        batch_op.drop_column('stopped')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_column('device')
