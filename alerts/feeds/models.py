"""Feed-side facts about a case: drills (CAP status Exercise) and when its data was erased."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class CaseDrill(Base):
    """A case marked as a drill or system test: every text is marked, CAP says Exercise or Test,
    and it reaches only test devices and partners that opted in to drills."""

    __tablename__ = "case_drills"

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    marked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
    # "exercise" (a drill; CAP Exercise) or "test" (a system test; CAP Test).
    status: Mapped[str] = mapped_column(String(10), default="exercise", server_default="exercise")


class CaseErasure(Base):
    """When a closed case's personal data was erased (ids and times only)."""

    __tablename__ = "case_erasures"

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    photos_deleted: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(20), default="retention")


class PublishedDocument(Base):
    """A CAP document as it was published: rendered and signed once, served unchanged until
    erasure.

    Later changes are new Update documents; the stored ones are never re-rendered from the case.
    Erasure deletes them (they hold the child's details), and fetching one then answers 410.
    """

    __tablename__ = "published_documents"

    identifier: Mapped[str] = mapped_column(String(200), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(120))
    variant: Mapped[str] = mapped_column(String(10))
    position: Mapped[int]
    area: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The signed CAP XML by languages ("zh-CN,en", "en", ...): signed once when published, one
    # copy per choice of languages a partner can make. None only for rows from before signing.
    signed: Mapped[dict[str, str] | None] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
