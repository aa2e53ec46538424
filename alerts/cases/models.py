"""Missing-child cases. Personal data lives in CaseDetails so erasure is one row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ops.platform.clock import utcnow
from ops.platform.db import Base


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # Where and when the child was last seen: needed for targeting and kept for statistics.
    last_seen_at: Mapped[datetime]
    last_seen_lat: Mapped[float] = mapped_column(Float)
    last_seen_lon: Mapped[float] = mapped_column(Float)
    # The place first reported, set when the first sighting moves the last-seen place (null
    # before: the last-seen place is then still the original). Shown on the case page.
    origin_at: Mapped[datetime | None]
    origin_lat: Mapped[float | None] = mapped_column(Float)
    origin_lon: Mapped[float | None] = mapped_column(Float)
    alert_languages: Mapped[list[str]] = mapped_column(JSON)
    tip_line: Mapped[str] = mapped_column(String(32))
    # Free text from police; may name people, so it is erased with the details.
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    close_reason: Mapped[str | None] = mapped_column(Text)
    # How it ended (alerts.cases.outcome.Outcome), seconds from loss (origin_at or
    # last_seen_at) to resolving, and whether a tip helped: not personal data, so erasure
    # keeps them and the outcome statistics survive it. Null before closure.
    outcome: Mapped[str | None] = mapped_column(String(32))
    recovery_seconds: Mapped[int | None] = mapped_column(Integer)
    tip_contributed: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(default=1)

    details: Mapped[CaseDetails | None] = relationship(
        back_populates="case", cascade="all, delete-orphan", uselist=False, lazy="joined"
    )


class CaseDetails(Base):
    __tablename__ = "case_details"

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    child: Mapped[dict[str, Any]] = mapped_column(JSON)
    photos: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    last_seen_address: Mapped[str] = mapped_column(Text)
    origin_address: Mapped[str | None] = mapped_column(Text)
    circumstances: Mapped[str] = mapped_column(Text, default="")
    suspect: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    vehicle: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    case: Mapped[Case] = relationship(back_populates="details")


class CaseChange(Base):
    """A material change to a live alert, waiting for a second person (two-person rule).

    kind "details": new public text (payload: the CaseUpdate fields); kind "sighting": a
    sighting that moves the centre beyond the allowed distance (payload: the sighting); kind
    "area": a geofence override that widens the live area (payload: the override).
    """

    __tablename__ = "case_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
