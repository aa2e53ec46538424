"""Which outbox rows already ran their dispatch handlers (a redelivery is then a no-op)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class DispatchRun(Base):
    """One execution of a dispatched task; unique per outbox row so a redelivery is a no-op."""

    __tablename__ = "dispatch_runs"

    outbox_id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
