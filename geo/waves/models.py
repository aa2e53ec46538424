"""Per-case wave schedules, supervisor overrides and sightings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class CaseGeo(Base):
    """A case's targeting state: the schedule epoch (a sighting starts a new one) and any
    supervisor override."""

    __tablename__ = "case_geo"

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(default=0)
    rule_version: Mapped[int | None]
    start_radius_km: Mapped[float | None] = mapped_column(Float)
    cap_km: Mapped[float | None] = mapped_column(Float)
    # A manual area polygon [[lat, lon], ...] replaces the growing circles.
    area_vertices: Mapped[list[list[float]] | None] = mapped_column(JSON)
    override_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    override_reason: Mapped[str | None] = mapped_column(Text)


class Wave(Base):
    __tablename__ = "waves"
    __table_args__ = (UniqueConstraint("case_id", "epoch", "index", name="uq_waves_case_epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int]
    index: Mapped[int]
    starts_at: Mapped[datetime] = mapped_column(index=True)
    radius_km: Mapped[float | None] = mapped_column(Float)
    center_lat: Mapped[float] = mapped_column(Float)
    center_lon: Mapped[float] = mapped_column(Float)
    # {"vertices": [[lat, lon], ...]} for a manual area, else {} (a circle from center/radius).
    area: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rule_version: Mapped[int | None]
    # scheduled -> targeting -> started; or cancelled (resolved, cancelled, superseded).
    status: Mapped[str] = mapped_column(String(12), default="scheduled", index=True)
    started_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(100))
    shards: Mapped[int] = mapped_column(default=0)


class Sighting(Base):
    __tablename__ = "sightings"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # Free text may identify people: erased with the case's personal data.
    address: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
