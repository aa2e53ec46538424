"""Versioned radius rule sets; a new version applies to waves planned after it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class RuleSetVersion(Base):
    __tablename__ = "rule_set_versions"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # [{"up_to_minutes": int, "radius_km": float}, ...]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    max_radius_km: Mapped[float] = mapped_column(Float)
    # [{"name": str, "vertices": [[lat, lon], ...], "steps": [...], "max_radius_km": float}]
    regions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    # Devices that enter a live wave's area after it started get the alert too (geo.late).
    alert_late_arrivals: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
