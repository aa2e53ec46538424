"""rule_set_versions.alert_late_arrivals: the operator's switch for alerting devices that
enter a live wave's area after it started (on by default, so existing versions keep it on)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rule_set_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("alert_late_arrivals", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("rule_set_versions", schema=None) as batch_op:
        batch_op.drop_column("alert_late_arrivals")
