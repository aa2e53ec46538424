"""Partner-reported reach: one row per partner and message, replaced by each new report."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class PartnerReach(Base):
    """What a partner says one message reached in its app (its figures, not ours)."""

    __tablename__ = "partner_reach"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("channel_messages.id", ondelete="CASCADE"), primary_key=True
    )
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    impressions: Mapped[int] = mapped_column(Integer)
    opened: Mapped[int | None] = mapped_column(Integer)
    reported_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
