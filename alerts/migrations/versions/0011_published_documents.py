"""published CAP documents, stored as published

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 22:45:00
"""

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_documents",
        sa.Column("identifier", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=120), nullable=False),
        sa.Column("variant", sa.String(length=10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("area", sa.JSON(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("published_at", ops.platform.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("identifier"),
    )
    with op.batch_alter_table("published_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_published_documents_case_id"), ["case_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("published_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_published_documents_case_id"))
    op.drop_table("published_documents")
