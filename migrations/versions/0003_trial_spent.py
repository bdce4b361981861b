"""budget counts every attempt: trials.spent (costs added up over attempts); events.actor fits an agent id

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spent', sa.Float(), server_default=sa.text('0'), nullable=False))
    # What is known of the past: each trial's recorded cost (earlier re-queued attempts recorded none).
    op.execute("UPDATE trials SET spent = cost WHERE cost IS NOT NULL")
    # An agent id (box:pid:tag) is the actor of the events its agent writes; lock_owner holds 200.
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('actor', existing_type=sa.String(length=100), type_=sa.String(length=200),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('actor', existing_type=sa.String(length=200), type_=sa.String(length=100),
                              existing_nullable=False, postgresql_using='substr(actor, 1, 100)')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_column('spent')
