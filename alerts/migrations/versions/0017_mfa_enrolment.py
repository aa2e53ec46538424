"""users: admin-issued one-time TOTP enrolment codes; agencies: TOTP required for officers

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 00:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enrolment_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("enrolment_code_expires_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("require_totp", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_column("require_totp")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("enrolment_code_expires_at")
        batch_op.drop_column("enrolment_code_hash")
