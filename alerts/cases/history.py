"""A case's history: the filtered, paginated case list and one case's timeline.

Both read what is recorded already (cases, their details, the audit log, waves, sightings,
erasures); nothing here writes. Free text searched for never leaves this module: it is a bound
parameter, never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case, CaseDetails
from alerts.feeds.models import CaseErasure
from alerts.users.models import Agency, User
from geo.waves.models import Sighting, Wave
from ops.platform.audit.models import AuditEntry

PAGE_SIZE = 25
CLOSED = (CaseState.RESOLVED.value, CaseState.CANCELLED.value, CaseState.EXPIRED.value)
OPEN = (CaseState.DRAFT.value, CaseState.SUBMITTED.value, CaseState.ACTIVE.value)
# "open" and "closed" group the states; any single state is accepted too.
STATE_FILTERS = ("", "open", "closed", *OPEN, *CLOSED)
TEXT_MAX = 100


@dataclass
class CaseFilter:
    """What the officer asked for; every part optional."""

    state: str = ""
    agency_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    text: str = ""
    page: int = 1


@dataclass
class ListRow:
    id: str
    short_id: str
    state: str
    agency: str
    created_at: datetime
    approved_at: datetime | None
    closed_at: datetime | None
    child_name: str | None  # None once erased
    erased_at: datetime | None

    @property
    def closed(self) -> bool:
        return self.state in CLOSED


@dataclass
class CasePage:
    rows: list[ListRow]
    total: int
    page: int
    pages: int
    agencies: list[tuple[int, str]] = field(default_factory=list)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(session: Session, user: User, wanted: CaseFilter, tz: str) -> CasePage:
    """The cases of the user's agencies matching the filter, newest first, one page of them.

    Text matches the case reference (its id's start), the child's name and the last-seen or
    first-reported address; erased cases have neither name nor address, so only their
    reference matches.
    """
    visible = cases.visible_agencies(session, user)
    agencies = [
        (a.id, a.name)
        for a in session.scalars(select(Agency).where(Agency.id.in_(visible)).order_by(Agency.name))
    ]
    query = (
        select(Case, Agency.name, CaseDetails.child["name"].as_string(), CaseErasure.erased_at)
        .join(Agency, Agency.id == Case.agency_id)
        .outerjoin(CaseDetails, CaseDetails.case_id == Case.id)
        .outerjoin(CaseErasure, CaseErasure.case_id == Case.id)
        .where(Case.agency_id.in_(visible))
    )
    if wanted.state == "open":
        query = query.where(Case.state.in_(OPEN))
    elif wanted.state == "closed":
        query = query.where(Case.state.in_(CLOSED))
    elif wanted.state in STATE_FILTERS and wanted.state:
        query = query.where(Case.state == wanted.state)
    if wanted.agency_id is not None:
        query = query.where(Case.agency_id == wanted.agency_id)
    zone = ZoneInfo(tz)
    if wanted.date_from is not None:
        query = query.where(Case.created_at >= datetime.combine(wanted.date_from, time(), zone))
    if wanted.date_to is not None:
        end = datetime.combine(wanted.date_to + timedelta(days=1), time(), zone)
        query = query.where(Case.created_at < end)
    text = wanted.text.strip()[:TEXT_MAX]
    if text:
        pattern = _like(text)
        query = query.where(
            or_(
                Case.id.like(f"{_like(text.lower())[1:]}", escape="\\"),
                CaseDetails.child["name"].as_string().ilike(pattern, escape="\\"),
                CaseDetails.last_seen_address.ilike(pattern, escape="\\"),
                CaseDetails.origin_address.ilike(pattern, escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, wanted.page), pages)
    result = session.execute(
        query.order_by(Case.created_at.desc(), Case.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).unique()
    rows = [
        ListRow(
            id=case.id,
            short_id=case.id[:8],
            state=case.state,
            agency=agency,
            created_at=case.created_at,
            approved_at=case.approved_at,
            closed_at=case.closed_at,
            child_name=name if erased_at is None else None,
            erased_at=erased_at,
        )
        for case, agency, name, erased_at in result
    ]
    return CasePage(rows, total, page, pages, agencies)


@dataclass
class Entry:
    """One line of a case's timeline; `kind` is a catalogue key suffix, values fill it in."""

    at: datetime
    kind: str
    actor: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


# Audit actions shown on the timeline; sightings come from their own table (with the place).
AUDITED = {
    "case.created": "created",
    "case.submitted": "submitted",
    "case.approved": "approved",
    "case.rejected": "rejected",
    "case.updated": "updated",
    "case.photo_added": "photo_added",
    "case.change_proposed": "change_proposed",
    "case.change_approved": "change_approved",
    "case.change_rejected": "change_rejected",
    "case.geo_override_set": "area_changed",
    "case.drill_marked": "drill_marked",
    "case.resolved": "resolved",
    "case.cancelled": "cancelled",
    "case.expired": "expired",
    "case.erased": "erased",
}


def _actor_names(session: Session, actors: set[str]) -> dict[str, str]:
    ids = [int(a.split(":", 1)[1]) for a in actors if a.startswith("user:") and a[5:].isdigit()]
    if not ids:
        return {}
    users = session.scalars(select(User).where(User.id.in_(ids)))
    return {f"user:{u.id}": u.username for u in users}


def timeline(session: Session, case: Case) -> list[Entry]:
    """Created, submitted, approved, waves started, sightings, updates, closure and erasure,
    oldest first."""
    audit_rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.subject == f"case:{case.id}", AuditEntry.action.in_(AUDITED))
        .order_by(AuditEntry.seq)
    ).all()
    names = _actor_names(session, {row.actor for row in audit_rows})
    entries = [
        Entry(
            at=row.at,
            kind=AUDITED[row.action],
            actor=names.get(row.actor, "system" if row.actor == "system" else None),
        )
        for row in audit_rows
    ]
    for wave in session.scalars(
        select(Wave).where(Wave.case_id == case.id, Wave.started_at.isnot(None))
    ):
        assert wave.started_at is not None
        entries.append(
            Entry(
                at=wave.started_at,
                kind="wave" if wave.radius_km else "wave_area",
                values={"n": wave.index + 1, "km": f"{wave.radius_km:g}" if wave.radius_km else ""},
            )
        )
    sightings = session.scalars(select(Sighting).where(Sighting.case_id == case.id)).all()
    sighting_names = _actor_names(session, {f"user:{s.created_by_id}" for s in sightings})
    for s in sightings:
        entries.append(
            Entry(
                at=s.created_at,
                kind="sighting",
                actor=sighting_names.get(f"user:{s.created_by_id}"),
                values={
                    "seen_at": s.at,
                    "lat": f"{s.lat:.5f}",
                    "lon": f"{s.lon:.5f}",
                    "address": s.address or "",
                },
            )
        )
    entries.sort(key=lambda e: e.at)
    return entries


@dataclass
class Origin:
    at: datetime
    lat: float
    lon: float
    address: str | None


def origin(case: Case) -> Origin | None:
    """The last-seen place first reported, once a sighting has moved the case (else None:
    the last-seen place shown is still the original)."""
    if case.origin_at is None or case.origin_lat is None or case.origin_lon is None:
        return None
    address = case.details.origin_address if case.details is not None else None
    return Origin(case.origin_at, case.origin_lat, case.origin_lon, address)
