"""delivery counts: withdrawn

Targets not sent because their case closed first are counted apart from failures.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 22:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_counts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("withdrawn", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_counts", schema=None) as batch_op:
        batch_op.drop_column("withdrawn")
