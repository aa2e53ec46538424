"""Tips from the public and partners about a live case: personal data of the tipster.

The text, photo, location, callback number and dismissal reason are cleared when the case is
erased (alerts.privacy.service); the row keeps only ids, source, state and times, so counts
survive. The callback number is stored Fernet-encrypted (alerts.tips.service).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class Tip(Base):
    __tablename__ = "tips"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    # "partner" (the partner API) or "public" (the form on the case page).
    source: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id", ondelete="SET NULL"))
    # The alert message the tipster answered (partners send it; the public page's is None).
    message_id: Mapped[str | None] = mapped_column(String(120))
    text: Mapped[str | None] = mapped_column(Text)
    photo_ref: Mapped[str | None] = mapped_column(String(64))
    photo_content_type: Mapped[str | None] = mapped_column(String(20))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    seen_at: Mapped[datetime | None]
    callback_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default="new", index=True)
    dismiss_reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    triaged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    triaged_at: Mapped[datetime | None]
    # Promotion: the sighting it became, or the change waiting for a second supervisor.
    promoted_at: Mapped[datetime | None]
    promoted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sighting_id: Mapped[int | None] = mapped_column(ForeignKey("sightings.id", ondelete="SET NULL"))
    change_id: Mapped[int | None] = mapped_column(
        ForeignKey("case_changes.id", ondelete="SET NULL")
    )
    erased_at: Mapped[datetime | None]
    # Bumped on every change, so the console's poll sees triage by a colleague too.
    version: Mapped[int] = mapped_column(Integer, default=1)
