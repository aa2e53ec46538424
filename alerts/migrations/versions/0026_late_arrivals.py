"""rule_set_versions.alert_late_arrivals: the operator's switch for alerting devices that
enter a live wave's area after it started (on by default, so existing versions keep it on)

Revision ID: 0026
Revises: 0024 (0025 at merge: the outcome statistics branch holds 0025)
Create Date: 2026-12-06 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
# The lead sets this to "0025" when merging after the branch that adds 0025_case_outcome.
down_revision = "0024"
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
