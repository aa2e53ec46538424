"""partner_reach: partners' own reach counts per message (the latest report replaces the last)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 07:20:00
"""

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_reach",
        sa.Column("message_id", sa.String(length=120), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("impressions", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=True),
        sa.Column("reported_at", ops.platform.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", ops.platform.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["channel_messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_id", "partner_id"),
    )
    with op.batch_alter_table("partner_reach", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_partner_reach_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("partner_reach", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partner_reach_case_id"))
    op.drop_table("partner_reach")
