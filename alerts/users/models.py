"""Police agencies, users and their API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    # None: nobody may approve their own case (the default two-person rule).
    self_approval_min_rank: Mapped[str | None] = mapped_column(String(20))
    # A drill of this agency goes to the public registry (still marked on every message),
    # not only to test devices and opted-in partners. Set only with `reunite agencies
    # live-exercises`, which is audited.
    live_exercises: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Officers of this agency need a second factor too (supervisors, operators and admins
    # always do). Set with `reunite agencies require-totp`, which is audited.
    require_totp: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    rank: Mapped[str] = mapped_column(String(20))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A one-time code an admin issues for the user's first TOTP enrolment (SHA-256 only): the
    # password alone never enrols a second factor.
    enrolment_code_hash: Mapped[str | None] = mapped_column(String(64))
    enrolment_code_expires_at: Mapped[datetime | None]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    # Only the SHA-256 of the token is stored: a database leak gives no usable token. The hash
    # is the key a bearer token is looked up by; `id` is the public handle that listings show
    # and revocation names (it reveals nothing about the secret).
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(16), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # alerts.users.roles.TokenScope: "full", or "read" (GET and HEAD only).
    scope: Mapped[str] = mapped_column(String(8), default="full", server_default="full")
    # alerts.users.roles.TokenOrigin: "password+totp" (the token endpoint, the CLI) or "console".
    created_via: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
