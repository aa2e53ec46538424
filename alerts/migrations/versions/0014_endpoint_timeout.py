"""partner endpoints: their own request timeout

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 23:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partner_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timeout_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partner_endpoints", schema=None) as batch_op:
        batch_op.drop_column("timeout_s")
