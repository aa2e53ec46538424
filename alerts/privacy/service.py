"""Erasure of a closed case's personal data once its retention has passed.

What goes: the CaseDetails row (name, photos, descriptions, suspect, vehicle, address), the
photo files, the free texts that may name people (rejection and close reasons, sighting
addresses and notes, the override reason), and every tip's content (alerts.tips: text, photo,
place, callback number). What stays: ids, times, states, coordinates, areas, counts and the
audit chain, and each case's outcome, time from loss to recovery and whether a tip
contributed (not personal data: alerts.stats reads them), for statistics. The published CAP
documents and the messages' stored renderings are deleted too (fetching a document then
answers 410); photo URLs already stopped at closure.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case, CaseChange
from alerts.feeds import photos
from alerts.feeds.models import CaseErasure, PublishedDocument
from alerts.tips import service as tips
from channels.models import Message
from geo.waves.models import CaseGeo, Sighting
from ops.platform.audit import service as audit
from ops.platform.clock import utcnow
from ops.platform.config import Settings

log = logging.getLogger(__name__)
CLOSED = (CaseState.RESOLVED.value, CaseState.CANCELLED.value, CaseState.EXPIRED.value)


class NotClosed(Exception):
    """Only a closed case can be erased."""


def erase(session: Session, case_id: str, settings: Settings, kind: str = "retention") -> int:
    """Erase one closed case's personal data; returns how many photo files were deleted."""
    if session.get_bind().dialect.name == "sqlite":
        # Overwrite deleted content with zeros instead of leaving it in free pages.
        session.execute(text("PRAGMA secure_delete = ON"))
    case = session.scalars(select(Case).where(Case.id == case_id).with_for_update(of=Case)).one()
    if case.state not in CLOSED:
        raise NotClosed(f"case {case.id} is {case.state}")
    deleted = 0
    if case.details is not None:
        for photo in case.details.photos or []:
            deleted += photos.erase(settings, str(photo.get("ref", "")))
        case.details = None
    # Tips are the tipsters' personal data: text, photo, place, callback number, reasons.
    deleted += tips.erase(session, case.id, settings)
    case.rejection_reason = None
    case.close_reason = None
    for sighting in session.scalars(select(Sighting).where(Sighting.case_id == case.id)):
        sighting.address = None
        sighting.note = None
    geo = session.get(CaseGeo, case.id)
    if geo is not None:
        geo.override_reason = None
    audit.erase_reasons(session, f"case:{case.id}")
    for change in session.scalars(select(CaseChange).where(CaseChange.case_id == case.id)):
        change.payload = None  # proposed text or sighting: personal data like the details
    # The published CAP documents carry the child's details: the feeds drop them (410).
    session.execute(delete(PublishedDocument).where(PublishedDocument.case_id == case.id))
    # So do the stored renderings of its messages (push, SMS and webhook texts).
    session.execute(update(Message).where(Message.case_id == case.id).values(rendered=None))
    if session.get(CaseErasure, case.id) is None:
        session.add(CaseErasure(case_id=case.id, photos_deleted=deleted, kind=kind))
    audit.record(
        session,
        actor="system",
        action="case.erased",
        subject=f"case:{case.id}",
        detail={"photos_deleted": deleted, "kind": kind},
    )
    log.info("case %s personal data erased (%d photo files)", case.id, deleted)
    return deleted


def due(session: Session, settings: Settings, now: datetime | None = None) -> list[str]:
    """Closed cases past the retention whose data is not yet erased."""
    cutoff = (now or utcnow()) - timedelta(days=settings.erasure_retention_days)
    erased = select(CaseErasure.case_id)
    return list(
        session.scalars(
            select(Case.id).where(
                Case.state.in_(CLOSED),
                Case.closed_at <= cutoff,
                Case.id.not_in(erased),
            )
        )
    )


def scrub_storage(session: Session) -> None:
    """Let no erased bytes linger in SQLite's write-ahead log (PostgreSQL's VACUUM does this)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
