"""cases.outcome, recovery_seconds, tip_contributed: how a case ended, kept after erasure

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for cases closed before this revision: the statistics count them as "unknown".
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("recovery_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tip_contributed", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("tip_contributed")
        batch_op.drop_column("recovery_seconds")
        batch_op.drop_column("outcome")
