"""case changes waiting for a second person

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 22:50:00
"""

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UTC = ops.platform.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "case_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=False),
        sa.Column("submitted_at", UTC, nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["submitted_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["decided_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_changes_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_changes_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_changes_state"))
        batch_op.drop_index(batch_op.f("ix_case_changes_case_id"))
    op.drop_table("case_changes")
