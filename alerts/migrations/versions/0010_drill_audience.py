"""drills: status, test devices, partners opted in

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_drills", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=10), nullable=False, server_default="exercise")
        )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("test_device", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("drills", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("drills")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("test_device")
    with op.batch_alter_table("case_drills", schema=None) as batch_op:
        batch_op.drop_column("status")
