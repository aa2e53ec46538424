"""tips from partners and the public, routed to the case officer

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 06:10:00
"""

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

UTC = ops.platform.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(length=120), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("photo_ref", sa.String(length=64), nullable=True),
        sa.Column("photo_content_type", sa.String(length=20), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("seen_at", UTC, nullable=True),
        sa.Column("callback_enc", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dismiss_reason", sa.Text(), nullable=True),
        sa.Column("received_at", UTC, nullable=False),
        sa.Column("triaged_by_id", sa.Integer(), nullable=True),
        sa.Column("triaged_at", UTC, nullable=True),
        sa.Column("promoted_at", UTC, nullable=True),
        sa.Column("promoted_by_id", sa.Integer(), nullable=True),
        sa.Column("sighting_id", sa.Integer(), nullable=True),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("erased_at", UTC, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["triaged_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["promoted_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["sighting_id"], ["sightings.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["change_id"], ["case_changes.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tips_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tips_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tips_state"))
        batch_op.drop_index(batch_op.f("ix_tips_case_id"))
    op.drop_table("tips")
