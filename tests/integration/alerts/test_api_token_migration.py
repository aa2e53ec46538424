"""Migration 0018 (api_tokens: id, name, scope, created_via, revoked_at) on SQLite and
PostgreSQL: tokens issued before it keep working as full tokens with an id of their own, and
going back never turns a revoked or read token into a working full one."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from alerts import migrate
from alerts.users import service as users
from alerts.users.models import ApiToken, User
from alerts.users.roles import Role, TokenOrigin, TokenScope
from ops.platform.clock import utcnow
from ops.platform.db import UTCDateTime, get_engine, session_scope
from tests.factories import make_agency, make_user

OLD_TOKENS = sa.table(
    "api_tokens",
    sa.column("token_hash", sa.String),
    sa.column("user_id", sa.Integer),
    sa.column("created_at", UTCDateTime()),
    sa.column("expires_at", UTCDateTime()),
)


def _issue(scope: TokenScope, revoke: bool = False) -> str:
    with session_scope() as s:
        user = s.scalar(select(User).where(User.username == "officer1"))
        secret, row = users.issue_token(
            s, user, timedelta(days=1), name="t", scope=scope, via=TokenOrigin.CONSOLE
        )
        if revoke:
            users.revoke_token(s, user, row.id)
    return secret


def test_0018_keeps_old_tokens_as_full_and_its_downgrade_drops_what_would_widen(database):
    make_agency("Guangzhou PSB")
    user_id = make_user("officer1", Role.OFFICER, "Guangzhou PSB")
    kept = _issue(TokenScope.FULL)
    _issue(TokenScope.READ)
    _issue(TokenScope.FULL, revoke=True)
    cfg = migrate.alembic_config()
    command.downgrade(cfg, "0017")
    with get_engine().connect() as conn:
        left = conn.execute(sa.select(OLD_TOKENS.c.token_hash)).scalars().all()
    assert left == [hashlib.sha256(kept.encode()).hexdigest()], "read and revoked ones deleted"

    with get_engine().begin() as conn:
        conn.execute(
            OLD_TOKENS.insert(),
            [
                {
                    "token_hash": hashlib.sha256(f"rut_old{i}".encode()).hexdigest(),
                    "user_id": user_id,
                    "created_at": utcnow(),
                    "expires_at": utcnow() + timedelta(hours=12),
                }
                for i in range(3)
            ],
        )
    command.upgrade(cfg, "head")
    with session_scope() as s:
        rows = s.scalars(select(ApiToken)).all()
        assert len(rows) == 4 and len({r.id for r in rows}) == 4
        assert {(r.name, r.scope, r.created_via, r.revoked_at) for r in rows} == {
            ("api", "full", "password+totp", None)
        }
        assert all(len(r.id) == 12 for r in rows)
        for secret in (kept, "rut_old0"):
            found = users.bearer(s, secret)
            assert found is not None and found[1].scope == "full"
