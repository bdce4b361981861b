"""team mode: box reservations; partial indexes for the queued-trial claim, the reaper and fair share's usage sums

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reservations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('box', sa.String(length=200), nullable=False),
    sa.Column('user', sa.String(length=100), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=True),
    sa.Column('starts_at', sa.Float(), nullable=False),
    sa.Column('until', sa.Float(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index('ix_reservations_box_until', ['box', 'until'], unique=False)

    with op.batch_alter_table('trials', schema=None) as batch_op:
        # Partial indexes cost no entry for rows outside them: a lease -> finish cycle updates
        # every index of the row twice (status is indexed, so no HOT updates), the hot path's main cost.
        batch_op.create_index('ix_trials_lease_expiry', ['lock_expires_at'], unique=False,
                              postgresql_where=sa.text("status IN ('leased', 'running')"),
                              sqlite_where=sa.text("status IN ('leased', 'running')"))
        batch_op.drop_index('ix_trials_status_expiry')
        batch_op.create_index('ix_trials_finished_at', ['finished_at'], unique=False,
                              postgresql_where=sa.text("finished_at IS NOT NULL"),
                              sqlite_where=sa.text("finished_at IS NOT NULL"))
        # The queue: only queued rows, in lease order, so a claim never scans finished trials.
        batch_op.create_index('ix_trials_queued', ['sweep_id', 'number'], unique=False,
                              postgresql_where=sa.text("status = 'queued'"), sqlite_where=sa.text("status = 'queued'"))


def downgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index('ix_trials_queued')
        batch_op.drop_index('ix_trials_finished_at')
        batch_op.create_index('ix_trials_status_expiry', ['status', 'lock_expires_at'], unique=False)
        batch_op.drop_index('ix_trials_lease_expiry')

    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index('ix_reservations_box_until')

    op.drop_table('reservations')
