"""api_tokens: a public id, a name, a scope (full or read), revocation and how each was made

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 01:00:00
"""

import secrets

import sqlalchemy as sa
from alembic import op

import ops.platform.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UTC = ops.platform.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("scope", sa.String(length=8), server_default="full", nullable=False)
        )
        batch_op.add_column(sa.Column("created_via", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", UTC, nullable=True))
    # Tokens issued before this revision came from the token endpoint or the CLI (password and,
    # where due, TOTP) and could do everything their user could: they stay "full".
    tokens = sa.table(
        "api_tokens",
        sa.column("token_hash", sa.String),
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("created_via", sa.String),
    )
    conn = op.get_bind()
    for (token_hash,) in conn.execute(sa.select(tokens.c.token_hash)).all():
        conn.execute(
            tokens.update()
            .where(tokens.c.token_hash == token_hash)
            .values(id=secrets.token_hex(6), name="api", created_via="password+totp")
        )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("name", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("created_via", existing_type=sa.String(length=16), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_api_tokens_id"), ["id"])


def downgrade() -> None:
    # Without these columns a revoked token would work again and a read token could write:
    # both are deleted first.
    op.execute(sa.text("DELETE FROM api_tokens WHERE revoked_at IS NOT NULL OR scope <> 'full'"))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_api_tokens_id"), type_="unique")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("created_via")
        batch_op.drop_column("scope")
        batch_op.drop_column("name")
        batch_op.drop_column("id")
