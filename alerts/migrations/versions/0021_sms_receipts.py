"""delivery counts: delivered

Of the targets sent, those a carrier's delivery receipt confirmed on the handset (SMS), so the
snapshot keeps what the live ledger counts once Redis has let it go.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_counts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivered", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_counts", schema=None) as batch_op:
        batch_op.drop_column("delivered")
