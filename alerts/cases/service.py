"""Case intake and lifecycle over a session: the state machine decides, this module persists."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from enum import StrEnum
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from alerts.cases import lifecycle
from alerts.cases import outcome as outcomes
from alerts.cases.lifecycle import CLOSED_STATES, Action, CaseEvent, CaseState
from alerts.cases.models import Case, CaseChange, CaseDetails
from alerts.cases.schemas import CaseCreate, CaseRead, CaseUpdate, LastSeen, Photo
from alerts.dispatch import service as dispatch
from alerts.tips.models import Tip
from alerts.tips.triage import TipState
from alerts.users import service as users
from alerts.users.models import Agency, User
from alerts.users.roles import CASE_AUTHORS, Approver, Rank, Role, check_approval
from channels import closure
from ops.platform.audit import service as audit
from ops.platform.clock import utcnow
from ops.platform.config import Settings
from ops.platform.redis_client import get_redis

# Transitions that set something in motion downstream get an outbox row.
log = logging.getLogger(__name__)

DISPATCHED = {
    Action.APPROVE: "approved",
    Action.RESOLVE: "resolved",
    Action.CANCEL: "cancelled",
    Action.EXPIRE: "expired",
}
CLOSING = frozenset({Action.RESOLVE, Action.CANCEL, Action.EXPIRE})
# Session.info key: cases closed in the session's transaction, withdrawn once it commits.
_CLOSED = "reunite.closed_cases"


@event.listens_for(Session, "after_commit")
def _withdraw_closed_cases(session: Session) -> None:
    """Stop every queued alert of a case the moment its closing transaction commits."""
    for case_id in session.info.pop(_CLOSED, ()):
        try:
            closure.close_case(get_redis(), case_id)
        except redis.RedisError:
            # The dispatch of the closure marks it again (alerts.dispatch.flows).
            log.exception("could not mark case %s closed in Redis", case_id)


@event.listens_for(Session, "after_rollback")
def _forget_closed_cases(session: Session) -> None:
    session.info.pop(_CLOSED, None)


class CaseNotFound(LookupError):
    """No such case, or not one the user may see."""


class Forbidden(PermissionError):
    """The user's role or agency does not allow this."""


class CaseConflict(Exception):
    """The request does not fit the case's current state (HTTP 409)."""


class InvalidCase(ValueError):
    """Input that passed the schema but not the configured rules; names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _check_last_seen_age(last_seen: LastSeen, settings: Settings) -> None:
    if utcnow() - last_seen.at > timedelta(days=settings.last_seen_max_age_days):
        raise InvalidCase(
            "last_seen.at",
            f"is more than {settings.last_seen_max_age_days} days ago; check the date",
        )


MAX_PHOTOS = 10


def _claim_photos(session: Session, case: Case, refs: list[Photo], user: User) -> None:
    """Each referenced photo must be one uploaded to this case, or one this user uploaded for
    no case yet (the console stores an upload just before it creates or edits the case); it is
    then the case's for good. A ref never uploaded, or another case's photo (a closed case's
    child attached to a new alert), is refused naming the field."""
    from alerts.console.models import ConsolePhoto

    for i, photo in enumerate(refs):
        row = session.get(ConsolePhoto, photo.ref, with_for_update=True)
        field = f"photos.{i}.ref"
        if row is None:
            raise InvalidCase(field, "no such uploaded photo (POST /api/v1/cases/{id}/photos)")
        unclaimed_own = row.case_id is None and row.uploaded_by_id == user.id
        if row.case_id != case.id and not unclaimed_own:
            raise InvalidCase(field, "is not a photo of this case; upload it to this case")
        if row.content_type != photo.content_type:
            raise InvalidCase(f"photos.{i}.content_type", f"is {row.content_type} for this photo")
        row.case_id = case.id


def add_photo(session: Session, case_id: str, ref: str, user: User) -> bool:
    """Give an uploaded photo (already sanitised and stored, see alerts.console.photos) to a
    case. A draft lists it at once (True); any other open case only owns it, and an update
    that lists it goes through the usual path (a live case's second supervisor)."""
    from alerts.console.models import ConsolePhoto

    case = get(session, case_id, user, lock=True)
    if Role(user.role) not in CASE_AUTHORS:
        raise Forbidden(f"role {user.role} cannot edit cases")
    if case.state in CLOSED_STATES:
        raise CaseConflict(f"case is {case.state}; a closed case takes no photos")
    details = case.details
    assert details is not None
    listed = case.state == CaseState.DRAFT
    if listed and len(details.photos or []) >= MAX_PHOTOS:
        raise CaseConflict(f"a case holds at most {MAX_PHOTOS} photos")
    row = session.get(ConsolePhoto, ref)
    assert row is not None and row.case_id is None
    row.case_id = case.id
    if listed:
        details.photos = [*(details.photos or []), {"ref": ref, "content_type": row.content_type}]
        case.updated_at = utcnow()
    audit.record(
        session,
        actor=f"user:{user.id}",
        action="case.photo_added",
        subject=f"case:{case.id}",
        detail={"listed": listed},
    )
    return listed


def create(session: Session, data: CaseCreate, officer: User, settings: Settings) -> Case:
    """Create a draft case for the officer's agency."""
    if Role(officer.role) not in CASE_AUTHORS:
        raise Forbidden(f"role {officer.role} cannot create cases")
    _check_last_seen_age(data.last_seen, settings)
    now = utcnow()
    case = Case(
        id=str(uuid.uuid4()),
        state=CaseState.DRAFT.value,
        agency_id=officer.agency_id,
        created_by_id=officer.id,
        created_at=now,
        updated_at=now,
        last_seen_at=data.last_seen.at,
        last_seen_lat=data.last_seen.lat,
        last_seen_lon=data.last_seen.lon,
        alert_languages=[lang.value for lang in data.alert_languages],
        tip_line=data.tip_line,
    )
    case.details = CaseDetails(
        child=data.child.model_dump(mode="json"),
        photos=[p.model_dump(mode="json") for p in data.photos],
        last_seen_address=data.last_seen.address,
        circumstances=data.last_seen.circumstances,
        suspect=data.suspect.model_dump(mode="json") if data.suspect else None,
        vehicle=data.vehicle.model_dump(mode="json") if data.vehicle else None,
    )
    session.add(case)
    session.flush()
    _claim_photos(session, case, data.photos, officer)
    audit.record(
        session, actor=f"user:{officer.id}", action="case.created", subject=f"case:{case.id}"
    )
    return case


def visible_agencies(session: Session, user: User) -> list[int]:
    """Agencies whose cases the user may see: their own and those below it."""
    return users.descendants(session, user.agency_id)


def get(session: Session, case_id: str, user: User, *, lock: bool = False) -> Case:
    """A case the user may see, optionally locked for update."""
    query = select(Case).where(Case.id == case_id)
    if lock:
        query = query.with_for_update(of=Case)
    case = session.scalars(query).unique().one_or_none()
    if case is None or case.agency_id not in visible_agencies(session, user):
        raise CaseNotFound(f"case {case_id} not found")
    return case


def list_cases(
    session: Session, user: User, *, state: CaseState | None, limit: int, offset: int
) -> tuple[list[Case], int]:
    """Cases of the user's agencies, newest first."""
    query = select(Case).where(Case.agency_id.in_(visible_agencies(session, user)))
    if state is not None:
        query = query.where(Case.state == state.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Case.created_at.desc(), Case.id).limit(limit).offset(offset)
    ).unique()
    return list(rows), total


# On an active case these change through a sighting (which moves the waves), not an edit.
ACTIVE_FIXED = frozenset({"last_seen", "alert_languages"})


def update(
    session: Session, case_id: str, data: CaseUpdate, user: User, settings: Settings
) -> Case | CaseChange:
    """Change a draft at once; a change to an active case's public text waits for a second
    person (two-person rule) and is returned as a pending CaseChange."""
    case = get(session, case_id, user, lock=True)
    if Role(user.role) not in CASE_AUTHORS:
        raise Forbidden(f"role {user.role} cannot edit cases")
    changed = data.model_fields_set
    if data.photos is not None and case.state in (CaseState.DRAFT, CaseState.ACTIVE):
        _claim_photos(session, case, data.photos, user)
    if case.state == CaseState.ACTIVE:
        fixed = sorted(changed & ACTIVE_FIXED)
        if fixed:
            raise CaseConflict(
                f"case is active; {', '.join(fixed)} cannot be edited (add a sighting instead)"
            )
        if changed:
            payload = data.model_dump(mode="json", exclude_unset=True)
            return propose(session, case, ChangeKind.DETAILS, payload, user)
    elif case.state != CaseState.DRAFT:
        raise CaseConflict(f"case is {case.state}; only draft and active cases can be edited")
    apply_update(session, case, data, settings, actor=f"user:{user.id}")
    return case


def apply_update(
    session: Session, case: Case, data: CaseUpdate, settings: Settings, *, actor: str
) -> None:
    """Write the changed fields (an active case's alerted devices and partners get an update)."""
    changed = data.model_fields_set
    details = case.details
    assert details is not None
    if data.child is not None:
        details.child = data.child.model_dump(mode="json")
    if data.photos is not None:
        details.photos = [p.model_dump(mode="json") for p in data.photos]
    if data.last_seen is not None:
        _check_last_seen_age(data.last_seen, settings)
        case.last_seen_at = data.last_seen.at
        case.last_seen_lat = data.last_seen.lat
        case.last_seen_lon = data.last_seen.lon
        details.last_seen_address = data.last_seen.address
        details.circumstances = data.last_seen.circumstances
    if "suspect" in changed:
        details.suspect = data.suspect.model_dump(mode="json") if data.suspect else None
    if "vehicle" in changed:
        details.vehicle = data.vehicle.model_dump(mode="json") if data.vehicle else None
    if data.tip_line is not None:
        case.tip_line = data.tip_line
    if data.alert_languages is not None:
        case.alert_languages = [lang.value for lang in data.alert_languages]
    case.updated_at = utcnow()
    case.version += 1
    audit.record(
        session,
        actor=actor,
        action="case.updated",
        subject=f"case:{case.id}",
        detail={"fields": sorted(changed)},
    )
    if case.state == CaseState.ACTIVE and changed:
        dispatch.enqueue_dispatch(session, case.id, "updated")


class ChangeKind(StrEnum):
    DETAILS = "details"
    SIGHTING = "sighting"
    AREA = "area"  # a geofence override that widens a live alert's area


def propose(
    session: Session, case: Case, kind: ChangeKind, payload: dict[str, Any], user: User
) -> CaseChange:
    """Hold a material change to a live alert until a second supervisor approves it."""
    change = CaseChange(case_id=case.id, kind=kind.value, payload=payload, submitted_by_id=user.id)
    session.add(change)
    session.flush()
    audit.record(
        session,
        actor=f"user:{user.id}",
        action="case.change_proposed",
        subject=f"case:{case.id}",
        detail={"change": change.id, "kind": kind.value, "fields": sorted(payload)},
    )
    return change


def decide_change(
    session: Session, case_id: str, change_id: int, supervisor: User, *, approve: bool
) -> tuple[Case, CaseChange]:
    """Check that a second supervisor may decide this pending change, and record the decision
    (audited like the first approval); the caller applies an approved change."""
    case = get(session, case_id, supervisor, lock=True)
    change = session.get(CaseChange, change_id)
    if change is None or change.case_id != case.id:
        raise CaseNotFound(f"change {change_id} not found")
    if change.state != "pending":
        raise CaseConflict(f"change {change_id} is {change.state}")
    if case.state != CaseState.ACTIVE:
        raise CaseConflict(f"case is {case.state}; only an active case's changes are decided")
    check_approval(
        Approver(
            user_id=supervisor.id,
            role=Role(supervisor.role),
            rank=Rank(supervisor.rank),
            agency_id=supervisor.agency_id,
        ),
        submitted_by=change.submitted_by_id,
        case_agency_lineage=users.lineage(session, case.agency_id),
        self_approval_min_rank=None,  # a live change always needs a second person
    )
    change.state = "approved" if approve else "rejected"
    change.decided_by_id, change.decided_at = supervisor.id, utcnow()
    audit.record(
        session,
        actor=f"user:{supervisor.id}",
        action=f"case.change_{change.state}",
        subject=f"case:{case.id}",
        detail={"change": change.id, "kind": change.kind, "submitted_by": change.submitted_by_id},
    )
    return case, change


def _apply(
    session: Session,
    case: Case,
    action: Action,
    actor: User | None,
    *,
    reason: str | None = None,
    self_approved: bool = False,
) -> CaseEvent:
    event = lifecycle.transition(
        CaseState(case.state),
        action,
        case_id=case.id,
        actor_id=actor.id if actor else None,
        at=utcnow(),
        reason=reason,
        self_approved=self_approved,
    )
    case.state = event.to_state.value
    case.updated_at = event.at
    case.version += 1
    detail: dict[str, Any] = {"from": event.from_state.value, "to": event.to_state.value}
    if self_approved:
        detail["self_approved"] = True
    audit.record(
        session,
        actor=f"user:{actor.id}" if actor else "system",
        action=f"case.{type(event).__name__.removeprefix('Case').lower()}",
        subject=f"case:{case.id}",
        reason=reason,
        detail=detail,
    )
    if action in DISPATCHED:
        dispatch.enqueue_dispatch(session, case.id, DISPATCHED[action])
    if action in CLOSING:
        session.info.setdefault(_CLOSED, set()).add(case.id)
    return event


def submit(session: Session, case_id: str, user: User) -> CaseEvent:
    """An officer sends a draft for a supervisor's approval."""
    case = get(session, case_id, user, lock=True)
    if Role(user.role) not in CASE_AUTHORS:
        raise Forbidden(f"role {user.role} cannot submit cases")
    event = _apply(session, case, Action.SUBMIT, user)
    case.submitted_by_id = user.id
    case.submitted_at = event.at
    case.rejection_reason = None
    return event


def approve(session: Session, case_id: str, supervisor: User) -> CaseEvent:
    """A different supervisor (or an audited self-approval) makes the case active."""
    case = get(session, case_id, supervisor, lock=True)
    if case.state != CaseState.SUBMITTED:
        raise lifecycle.IllegalTransition(CaseState(case.state), Action.APPROVE)
    agency = session.get(Agency, case.agency_id)
    assert agency is not None
    self_approved = check_approval(
        Approver(
            user_id=supervisor.id,
            role=Role(supervisor.role),
            rank=Rank(supervisor.rank),
            agency_id=supervisor.agency_id,
        ),
        submitted_by=case.submitted_by_id,
        case_agency_lineage=users.lineage(session, case.agency_id),
        self_approval_min_rank=(
            Rank(agency.self_approval_min_rank) if agency.self_approval_min_rank else None
        ),
    )
    event = _apply(session, case, Action.APPROVE, supervisor, self_approved=self_approved)
    case.approved_by_id = supervisor.id
    case.approved_at = event.at
    return event


def reject(session: Session, case_id: str, supervisor: User, reason: str) -> CaseEvent:
    """A supervisor sends the case back to draft with a reason."""
    case = get(session, case_id, supervisor, lock=True)
    if Role(supervisor.role) is not Role.SUPERVISOR:
        raise Forbidden(f"role {supervisor.role} cannot reject cases")
    event = _apply(session, case, Action.REJECT, supervisor, reason=reason)
    case.rejection_reason = reason
    return event


def resolve(
    session: Session,
    case_id: str,
    user: User,
    reason: str | None,
    outcome: outcomes.Outcome = outcomes.Outcome.FOUND_SAFE,
    tip_contributed: bool = False,
) -> CaseEvent:
    """The child is found: close the case with its outcome and send the closing notices."""
    if outcome not in outcomes.FOUND:
        raise ValueError(f"outcome {outcome} is not one a found child can have")
    case = get(session, case_id, user, lock=True)
    if Role(user.role) not in CASE_AUTHORS:
        raise Forbidden(f"role {user.role} cannot resolve cases")
    event = _apply(session, case, Action.RESOLVE, user, reason=reason)
    case.closed_at = event.at
    case.close_reason = reason
    _record_outcome(session, case, outcome, tip_contributed)
    case.recovery_seconds = outcomes.recovery_seconds(
        outcomes.lost_at(case.origin_at, case.last_seen_at), event.at
    )
    return event


def cancel(
    session: Session,
    case_id: str,
    user: User,
    reason: str,
    outcome: outcomes.Outcome = outcomes.Outcome.OTHER,
    tip_contributed: bool = False,
) -> CaseEvent:
    """Withdraw a case (false report, duplicate) with a reason and its outcome."""
    if outcome not in outcomes.CANCELLED:
        raise ValueError(f"outcome {outcome} is not one a cancelled case can have")
    case = get(session, case_id, user, lock=True)
    if Role(user.role) not in CASE_AUTHORS:
        raise Forbidden(f"role {user.role} cannot cancel cases")
    event = _apply(session, case, Action.CANCEL, user, reason=reason)
    case.closed_at = event.at
    case.close_reason = reason
    _record_outcome(session, case, outcome, tip_contributed)
    return event


def _record_outcome(session: Session, case: Case, outcome: outcomes.Outcome, ticked: bool) -> None:
    # Read now, at closure: erasure later empties the tips, and the figure must survive it.
    helped = session.scalar(
        select(func.count())
        .select_from(Tip)
        .where(
            Tip.case_id == case.id,
            (Tip.state == TipState.CREDIBLE.value) | Tip.promoted_at.is_not(None),
        )
    )
    case.outcome = outcome.value
    case.tip_contributed = bool(ticked or helped)


ABANDONED = "abandoned draft"


def abandon_stale_drafts(session: Session, settings: Settings) -> int:
    """Cancel drafts untouched for `draft_retention_days` (never submitted, or rejected and
    never resubmitted), so their personal data falls under erasure; returns how many."""
    cutoff = utcnow() - timedelta(days=settings.draft_retention_days)
    stale = session.scalars(
        select(Case)
        .where(Case.state == CaseState.DRAFT.value, Case.updated_at <= cutoff)
        .with_for_update(of=Case, skip_locked=True)
    ).unique()
    count = 0
    for case in stale:
        event = _apply(session, case, Action.CANCEL, None, reason=ABANDONED)
        case.closed_at = event.at
        case.close_reason = ABANDONED
        case.outcome = outcomes.Outcome.OTHER.value
        case.tip_contributed = False
        count += 1
    return count


def expire_due(session: Session, settings: Settings | None = None) -> int:
    """Expire active cases past their alert lifetime; returns how many."""
    from ops.platform.config import get_settings

    settings = settings or get_settings()
    cutoff = utcnow() - timedelta(hours=settings.alert_lifetime_hours)
    due = session.scalars(
        select(Case)
        .where(Case.state == CaseState.ACTIVE.value, Case.approved_at <= cutoff)
        .with_for_update(of=Case, skip_locked=True)
    ).unique()
    count = 0
    for case in due:
        event = _apply(session, case, Action.EXPIRE, None)
        case.closed_at = event.at
        # Nobody said how it ended: "unknown", never a guess.
        _record_outcome(session, case, outcomes.Outcome.UNKNOWN, False)
        count += 1
    return count


def to_read(case: Case) -> CaseRead:
    """The API view of a case; personal fields are None once erased."""
    d = case.details
    last_seen = None
    if d is not None:
        last_seen = {
            "at": case.last_seen_at,
            "lat": case.last_seen_lat,
            "lon": case.last_seen_lon,
            "address": d.last_seen_address,
            "circumstances": d.circumstances,
        }
    return CaseRead.model_validate(
        {
            "id": case.id,
            "state": case.state,
            "agency_id": case.agency_id,
            "created_by_id": case.created_by_id,
            "submitted_by_id": case.submitted_by_id,
            "approved_by_id": case.approved_by_id,
            "created_at": case.created_at,
            "updated_at": case.updated_at,
            "submitted_at": case.submitted_at,
            "approved_at": case.approved_at,
            "closed_at": case.closed_at,
            "tip_line": case.tip_line,
            "alert_languages": case.alert_languages,
            "rejection_reason": case.rejection_reason,
            "close_reason": case.close_reason,
            "outcome": case.outcome,
            "recovery_seconds": case.recovery_seconds,
            "tip_contributed": case.tip_contributed,
            "version": case.version,
            "child": d.child if d else None,
            "photos": d.photos if d else [],
            "last_seen": last_seen,
            "suspect": d.suspect if d else None,
            "vehicle": d.vehicle if d else None,
        }
    )


def cases_by_state(session: Session) -> dict[str, int]:
    """How many cases are in each lifecycle state (every state listed, zeros included)."""
    counts = dict.fromkeys((str(s) for s in CaseState), 0)
    for state, n in session.execute(select(Case.state, func.count()).group_by(Case.state)):
        counts[str(state)] = int(n)
    return counts


def state_gauges(session: Session, _client: Any) -> Iterator[GaugeMetricFamily]:
    """Cases by lifecycle state, for /metrics."""
    family = GaugeMetricFamily("reunite_cases", "Cases by lifecycle state", labels=["state"])
    for state, n in cases_by_state(session).items():
        family.add_metric([state], n)
    yield family
