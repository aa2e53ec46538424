"""Build the renderer's AlertContent from a case row (the only place that reads child details).

`CaseAlerts` is the channels' `AlertSource`: how a worker finds a message's words.
"""

from __future__ import annotations

import time
from datetime import date

from sqlalchemy.orm import Session, object_session

from alerts.cases.models import Case
from alerts.feeds import photos
from alerts.feeds.models import CaseDrill
from alerts.users.models import Agency
from channels.messages import AlertContent, AlertStatus, MessageKind, Sex
from ops.platform.config import get_settings


def _age(child: dict, on: date) -> int | None:
    if child.get("age_years") is not None:
        return int(child["age_years"])
    dob = child.get("date_of_birth")
    if not dob:
        return None
    born = date.fromisoformat(str(dob))
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def deep_link(base: str, case_id: str) -> str:
    """The public case page."""
    return f"{base.rstrip('/')}/{case_id}"


def alert_content(case: Case, kind: MessageKind, wave: int, link_base: str) -> AlertContent:
    """AlertContent for one message of a case; erased details render as a generic notice."""
    details = case.details
    child = dict(details.child) if details is not None else {}
    try:
        sex = Sex(child.get("sex", "unknown"))
    except ValueError:
        sex = Sex.UNKNOWN
    height = child.get("height_cm")
    return AlertContent(
        case_id=case.id,
        kind=kind,
        child_name=str(child.get("name", "")),
        age_years=_age(child, case.last_seen_at.date()),
        sex=sex,
        height_cm=int(height) if height is not None else None,
        clothing=str(child.get("clothing", "")),
        last_seen_at=case.last_seen_at,
        last_seen_place=details.last_seen_address if details is not None else "",
        tip_line=case.tip_line,
        deep_link=deep_link(link_base, case.id),
        # Partner issue: a signed URL that expires, and stops working when the case closes.
        photo_url=photos.url_for_case(case, get_settings(), time.time()),
        wave=wave,
        status=case_status(object_session(case), case.id),
    )


def case_status(session: Session | None, case_id: str) -> AlertStatus:
    """Actual, or the drill / system-test status a supervisor gave the case before approval."""
    drill = session.get(CaseDrill, case_id) if session is not None else None
    return AlertStatus(drill.status) if drill is not None else AlertStatus.ACTUAL


class CaseAlerts:
    """The channels' AlertSource, read from the case behind a message."""

    def content(
        self, session: Session, case_id: str, kind: MessageKind, wave: int
    ) -> tuple[AlertContent, list[str]] | None:
        """The case's alert content for one message, and the case's alert languages."""
        case = session.get(Case, case_id)
        if case is None:
            return None
        link_base = get_settings().case_link_base
        return alert_content(case, kind, wave, link_base), list(case.alert_languages)


def restricted_audience(session: Session, case_id: str) -> bool:
    """Whether the case reaches only test devices and partners that opted in to drills: every
    drill or system test, unless a drill's agency allows live exercises (audited setting)."""
    status = case_status(session, case_id)
    if status is AlertStatus.ACTUAL:
        return False
    if status is AlertStatus.EXERCISE:
        case = session.get(Case, case_id)
        agency = session.get(Agency, case.agency_id) if case is not None else None
        return not (agency is not None and agency.live_exercises)
    return True
