"""console_photos: the case a photo belongs to (a case may reference only its own photos)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_photos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("case_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_console_photos_case_id"), ["case_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_console_photos_case_id_cases"),
            "cases",
            ["case_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # Photos already referenced belong to the (first) case that references them.
    bind = op.get_bind()
    details = sa.table("case_details", sa.column("case_id"), sa.column("photos", sa.JSON))
    photos = sa.table("console_photos", sa.column("ref"), sa.column("case_id"))
    for case_id, refs in bind.execute(sa.select(details.c.case_id, details.c.photos)):
        for photo in refs or []:
            bind.execute(
                photos.update()
                .where(photos.c.ref == photo.get("ref"), photos.c.case_id.is_(None))
                .values(case_id=case_id)
            )


def downgrade() -> None:
    with op.batch_alter_table("console_photos", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_console_photos_case_id_cases"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_console_photos_case_id"))
        batch_op.drop_column("case_id")
