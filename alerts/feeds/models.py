"""Feed-side facts about a case: drills (CAP status Exercise) and when its data was erased."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class CaseDrill(Base):
    """A case marked as a drill: its CAP documents carry status Exercise, never Actual."""

    __tablename__ = "case_drills"

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    marked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseErasure(Base):
    """When a closed case's personal data was erased (ids and times only)."""

    __tablename__ = "case_erasures"

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    photos_deleted: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(20), default="retention")
