"""cases.origin_*: the first last-seen place, kept when sightings move the case's centre

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 06:30:00
"""

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null until the first sighting: until then the last-seen place is the original one.
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin_at", ops.platform.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("origin_lat", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("origin_lon", sa.Float(), nullable=True))
    with op.batch_alter_table("case_details", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin_address", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_details", schema=None) as batch_op:
        batch_op.drop_column("origin_address")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("origin_lon")
        batch_op.drop_column("origin_lat")
        batch_op.drop_column("origin_at")
