"""partner areas, languages, formats, rate limits; endpoint secret overlap; drills, erasures

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC = ops.platform.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("area", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("languages", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("formats", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False, server_default="600")
        )
    with op.batch_alter_table("partner_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_until", UTC, nullable=True))
    op.create_table(
        "case_drills",
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("marked_by_id", sa.Integer(), nullable=False),
        sa.Column("marked_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_drills_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["marked_by_id"], ["users.id"], name=op.f("fk_case_drills_marked_by_id_users")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_drills")),
    )
    op.create_table(
        "case_erasures",
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("erased_at", UTC, nullable=False),
        sa.Column("photos_deleted", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_erasures_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_erasures")),
    )


def downgrade() -> None:
    op.drop_table("case_erasures")
    op.drop_table("case_drills")
    with op.batch_alter_table("partner_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_until")
        batch_op.drop_column("previous_secret_enc")
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("rate_limit_per_minute")
        batch_op.drop_column("formats")
        batch_op.drop_column("languages")
        batch_op.drop_column("area")
