"""users.enrolment_code_expires_at with its time zone (0017 created it without one)

On PostgreSQL the column was `timestamp without time zone` while the model writes aware UTC
times: a server not set to UTC shifted every enrolment code's expiry by its offset. Existing
values were written as UTC, so they are read back as UTC.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 04:30:00
"""

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps no time zone in the column; the type decorator handles it
    op.alter_column(
        "users",
        "enrolment_code_expires_at",
        type_=ops.platform.db.UTCDateTime(timezone=True),
        existing_type=sa.DateTime(),
        postgresql_using="enrolment_code_expires_at AT TIME ZONE 'UTC'",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "users",
        "enrolment_code_expires_at",
        type_=sa.DateTime(),
        existing_type=ops.platform.db.UTCDateTime(timezone=True),
        postgresql_using="enrolment_code_expires_at AT TIME ZONE 'UTC'",
    )
