"""What the console pages show, assembled from the case, wave, rule and channel services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.cases import content
from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case, CaseChange
from alerts.console import svgmap
from alerts.users.models import User
from channels import messages, sms
from channels import service as channels
from channels.base import Area
from channels.messages import AlertStatus
from geo.devices import service as devices
from geo.rulesets import service as rulesets
from geo.rulesets.schemas import PreviewRead
from geo.waves import service as waves
from ops.platform.config import Settings

CAP_HEADLINE_MAX = 139
OPEN_STATES = (CaseState.DRAFT, CaseState.SUBMITTED, CaseState.ACTIVE)


def local(when: datetime | None, settings: Settings) -> str:
    """A time in the console's time zone, minutes precision."""
    if when is None:
        return "—"
    return when.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M")


def elapsed(when: datetime, now: datetime | None = None) -> tuple[int, int]:
    """Hours and minutes since a time."""
    minutes = max(0, int(((now or datetime.now(UTC)) - when).total_seconds() // 60))
    return divmod(minutes, 60)


@dataclass
class WaveView:
    index: int
    epoch: int
    radius_km: float | None
    status: str
    starts_at: datetime
    targeted: int


@dataclass
class CaseRow:
    id: str
    short_id: str
    state: str
    child_name: str | None
    since: tuple[int, int]
    current: WaveView | None
    upcoming: WaveView | None
    reach: int


def wave_views(session: Session, case_id: str) -> list[WaveView]:
    """The case's waves with devices targeted so far."""
    rows = waves.waves_of(session, case_id)
    counts = waves.wave_stats([w.id for w in rows]) if rows else {}
    return [
        WaveView(w.index, w.epoch, w.radius_km, w.status, w.starts_at, counts.get(w.id, 0))
        for w in rows
    ]


def case_row(session: Session, case: Case, show_names: bool) -> CaseRow:
    """One dashboard line: state, time since last seen, current wave and reach."""
    views = wave_views(session, case.id) if case.state == CaseState.ACTIVE else []
    latest_epoch = max((w.epoch for w in views), default=0)
    live = [w for w in views if w.epoch == latest_epoch]
    started = [w for w in live if w.status in ("started", "targeting", "queued")]
    scheduled = [w for w in live if w.status == "scheduled"]
    child = case.details.child if case.details is not None else None
    return CaseRow(
        id=case.id,
        short_id=case.id[:8],
        state=case.state,
        child_name=(child or {}).get("name") if show_names else None,
        since=elapsed(case.last_seen_at),
        current=started[-1] if started else None,
        upcoming=scheduled[0] if scheduled else None,
        reach=sum(w.targeted for w in views),
    )


def dashboard(session: Session, user: User, police: bool) -> dict[str, list[CaseRow]]:
    """Active cases first, then those waiting for approval and drafts (police see their
    agencies' cases; operators see every active case without personal details)."""
    query = select(Case).where(Case.state.in_([s.value for s in OPEN_STATES]))
    if police:
        query = query.where(Case.agency_id.in_(cases.visible_agencies(session, user)))
    else:
        query = query.where(Case.state == CaseState.ACTIVE.value)
    rows = session.scalars(query.order_by(Case.last_seen_at.desc())).unique().all()
    grouped: dict[str, list[CaseRow]] = {s.value: [] for s in OPEN_STATES}
    for case in rows:
        grouped[case.state].append(case_row(session, case, police))
    return grouped


@dataclass
class Progress:
    label: str
    targeted: int
    done: int
    sent: int
    failed: int
    retrying: int
    stuck: list[str]  # channels past their deadline (the reconciler queues them again)
    requeued: int


def delivery_panel(session: Session, case_id: str) -> dict[str, Any]:
    """Per channel and partner totals and a progress line per alert wave (from the ledger)."""
    ledger = channels.case_deliveries(session, case_id, attempts_limit=20)
    per_wave: list[Progress] = []
    for m in ledger.messages:
        t = sum(c.targeted for c in m.counts)
        sent = sum(c.sent for c in m.counts)
        failed = sum(c.failed + c.dead + c.dead_lettered for c in m.counts)
        retrying = sum(c.retrying for c in m.counts)
        withdrawn = sum(c.withdrawn for c in m.counts)
        done = sent + failed + withdrawn
        per_wave.append(
            Progress(
                f"{m.kind}:{m.wave}", t, done, sent, failed, retrying, m.stuck_channels, m.requeued
            )
        )
    return {
        "totals": ledger.totals,
        "waves": per_wave,
        "attempts": ledger.webhook_attempts,
        "dead_letters": ledger.dead_letters,
    }


@dataclass
class LanguagePreview:
    language: str
    title: str
    body: str
    sms_text: str
    sms_summary: str
    sms_chars: int
    sms_parts: int
    sms_encoding: str
    sms_truncated: bool
    cap_headline: str


def message_previews(case: Case, settings: Settings) -> list[LanguagePreview]:
    """Exactly what the first alert would say, per language (push, SMS, CAP headline)."""
    alert = content.alert_content(case, messages.MessageKind.ALERT, 0, settings.case_link_base)
    out = []
    for lang in case.alert_languages:
        if lang not in messages.SUPPORTED_LANGUAGES:
            continue
        r = messages.render(
            alert, lang, settings.timezone, sms_max_parts=settings.channels.max_sms_parts
        )
        plan = sms.plan(r.sms_text, settings.channels.max_sms_parts)
        out.append(
            LanguagePreview(
                language=lang,
                title=r.title,
                body=r.body,
                sms_text=plan.text,
                sms_summary=plan.summary(),
                sms_chars=plan.char_count,
                sms_parts=plan.part_count,
                sms_encoding=str(plan.encoding),
                sms_truncated=plan.truncated,
                # CAP wants a headline under 140 characters that differs from the description.
                cap_headline=messages.truncate_chars(r.title, CAP_HEADLINE_MAX),
            )
        )
    return out


def reach_preview(session: Session, lat: float, lon: float, last_seen_at: datetime) -> PreviewRead:
    """The waves a case here would get now, with devices newly reached per wave."""
    now = datetime.now(UTC)
    return rulesets.preview(
        session,
        devices.location_index(),
        lat=lat,
        lon=lon,
        last_seen_at=min(last_seen_at, now),
        approved_at=now,
    )


def preview_map(
    lat: float,
    lon: float,
    preview: PreviewRead,
    settings: Settings,
    wave_label: Callable[..., str],
    point_label: str,
    title: str,
    first: int = 3,
) -> str:
    """SVG map of the first waves' areas."""
    rings = []
    for w in preview.waves[:first]:
        label = wave_label(n=w.index + 1, km=f"{w.radius_km:g}" if w.radius_km else "—")
        if w.radius_km is not None:
            rings.append(svgmap.Ring(label, radius_km=w.radius_km))
        else:
            rings.append(svgmap.Ring(label, vertices=Area.parse_polygon(w.cap_polygon)))
    return svgmap.render(
        lat,
        lon,
        rings,
        tile_url=settings.map_tile_url,
        title=title,
        point_label=point_label,
    )


def drill_of(session: Session, case_id: str) -> str | None:
    """ "exercise" or "test" for a drill or system test (the console shows a banner), else None."""
    status = content.case_status(session, case_id)
    return None if status is AlertStatus.ACTUAL else str(status)


def pending_changes(session: Session, case_id: str) -> list[CaseChange]:
    """Changes to the live alert waiting for a second supervisor, oldest first."""
    return list(
        session.scalars(
            select(CaseChange)
            .where(CaseChange.case_id == case_id, CaseChange.state == "pending")
            .order_by(CaseChange.id)
        )
    )
