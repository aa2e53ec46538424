"""Partner accounts (apps, SMS carriers, media) and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Area of interest: a list of polygons [[[lat, lon], ...], ...]; None is the whole country.
    area: Mapped[list[list[list[float]]] | None] = mapped_column(JSON, default=None)
    # Languages and formats the partner takes; empty means all.
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    formats: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate_limit_per_minute: Mapped[int] = mapped_column(default=600)
    # The partner asked to receive drills and system tests (always marked as such).
    drills: Mapped[bool] = mapped_column(default=False, server_default=false())


class PartnerKey(Base):
    __tablename__ = "partner_keys"

    # The visible prefix identifies the key in logs and listings; only a hash of the rest is kept.
    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
