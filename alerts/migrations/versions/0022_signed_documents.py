"""published_documents: the signed CAP XML, per choice of languages

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 03:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows published before this are signed once on their next read (alerts.feeds.service).
    with op.batch_alter_table("published_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("published_documents", schema=None) as batch_op:
        batch_op.drop_column("signed")
