"""What the console pages show, assembled from the case, wave, rule and channel services."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
from alerts.feeds import cap
from alerts.feeds import service as feeds
from alerts.partners.models import Partner
from alerts.users.models import User
from channels import messages, sms
from channels import service as channels
from channels.base import Area
from channels.messages import AlertStatus
from channels.models import Message
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


def change_summary(t: Callable[..., str], change: CaseChange) -> str:
    """What a held change would publish, in the reader's words: the sections a details change
    replaces ("Child, Vehicle"), or a distant sighting's place; never raw payload keys."""
    payload = change.payload or {}
    if change.kind == cases.ChangeKind.SIGHTING and "lat" in payload and "lon" in payload:
        place = f"{float(payload['lat']):.5f}, {float(payload['lon']):.5f}"
        return f"{payload['address']} · {place}" if payload.get("address") else place
    if change.kind == cases.ChangeKind.DETAILS:
        names = {"alert_languages": "languages"}  # the form's label for that field
        return ", ".join(t(f"case.{names.get(name, name)}") for name in sorted(payload))
    return ""


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
    id: int = 0

    @property
    def number(self) -> int:
        """The wave as people count it: 1 for the first (stored from 0)."""
        return self.index + 1


@dataclass
class Counts:
    """The console's delivery words, one meaning each wherever they show (dashboard, case
    page, status JSON; the API's ledger and /metrics use the same stats):

    targeted: targets chosen (devices, partner endpoints, topics); sent: accepted by the
    provider; failed: refused for good (the ledger's failed, dead and dead_lettered);
    retrying: waiting for a retry now; delivered: of sent, confirmed on the handset by a
    carrier receipt (SMS only); withdrawn: not sent because the case closed first.
    """

    targeted: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    delivered: int = 0
    withdrawn: int = 0

    @classmethod
    def of(cls, stats: Mapping[str, int] | Any) -> Counts:
        """From a ledger stats mapping or a ChannelCount."""

        def get(name: str) -> int:
            if isinstance(stats, Mapping):
                return int(stats.get(name, 0))
            return int(getattr(stats, name, 0))

        return cls(
            targeted=get("targeted"),
            sent=get("sent"),
            failed=get("failed") + get("dead") + get("dead_lettered"),
            retrying=get("retrying"),
            delivered=get("delivered"),
            withdrawn=get("withdrawn"),
        )

    def add(self, other: Counts) -> None:
        """Add another row's counts to these."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class CaseRow:
    id: str
    short_id: str
    state: str
    child_name: str | None
    since: tuple[int, int]
    current: WaveView | None
    upcoming: WaveView | None
    counts: Counts = field(default_factory=Counts)


def wave_views(session: Session, case_id: str) -> list[WaveView]:
    """The case's waves with devices targeted so far."""
    rows = waves.waves_of(session, case_id)
    counts = waves.wave_stats([w.id for w in rows]) if rows else {}
    return [
        WaveView(w.index, w.epoch, w.radius_km, w.status, w.starts_at, counts.get(w.id, 0), w.id)
        for w in rows
    ]


def case_row(
    session: Session, case: Case, show_names: bool, totals: Mapping[str, int] | None = None
) -> CaseRow:
    """One dashboard line: state, time since last seen, current wave, and the ledger's
    targeted / sent / failed / delivered over the case's messages."""
    if totals is None:
        totals = channels.case_totals(session, [case.id])[case.id] if case.approved_at else {}
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
        counts=Counts.of(totals),
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
    totals = channels.case_totals(session, [c.id for c in rows if c.approved_at])
    for case in rows:
        grouped[case.state].append(case_row(session, case, police, totals.get(case.id, {})))
    return grouped


@dataclass
class Progress:
    message_id: str
    label: str  # "Alert · wave 2 · 200 km"
    targeted: int
    done: int
    sent: int
    failed: int
    retrying: int
    stuck: list[str]  # channels past their deadline (the reconciler queues them again)
    requeued: int


@dataclass
class ChannelRow:
    key: str  # "channel:partner id" (0 for topics and broadcasts)
    channel: str
    partner_id: int | None
    partner: str | None  # the partner's name
    counts: Counts


def wave_label(t: Callable[..., str], w: WaveView | None) -> str:
    """ "Wave 2 · 200 km" (numbered from 1), "Wave 2 · custom area", or "—"."""
    if w is None:
        return t("wave.none")
    if w.radius_km:
        return t("wave.label", n=w.number, km=f"{w.radius_km:g}")
    return t("wave.area", n=w.number)


def message_label(t: Callable[..., str], kind: str, wave: int, area: Mapping | None) -> str:
    """A message by kind and wave, numbered from 1: "Alert · wave 2 · 200 km"; an update or a
    closing notice goes to everyone alerted so far and has no wave of its own."""
    name = t(f"kind.{kind}")
    if kind != messages.MessageKind.ALERT:
        return name
    radius = (area or {}).get("radius_km")
    if radius:
        return t("msg.wave_km", kind=name, n=wave + 1, km=f"{radius:g}")
    return t("msg.wave_area", kind=name, n=wave + 1)


def partner_names(session: Session, ids: set[int]) -> dict[int, str]:
    """Partner id -> name."""
    if not ids:
        return {}
    return dict(session.execute(select(Partner.id, Partner.name).where(Partner.id.in_(ids))).all())


def delivery_panel(session: Session, case_id: str, t: Callable[..., str]) -> dict[str, Any]:
    """Per channel and partner totals (partners by name) and a progress line per message
    ("Alert · wave 2 · 200 km"), from the ledger."""
    ledger = channels.case_deliveries(session, case_id, attempts_limit=20)
    query = select(Message.id, Message.area).where(Message.case_id == case_id)
    areas = {row[0]: row[1] for row in session.execute(query)}
    per_wave: list[Progress] = []
    for m in ledger.messages:
        c = Counts()
        for row in m.counts:
            c.add(Counts.of(row))
        per_wave.append(
            Progress(
                m.message_id,
                message_label(t, m.kind, m.wave, areas.get(m.message_id)),
                c.targeted,
                c.sent + c.failed + c.withdrawn,
                c.sent,
                c.failed,
                c.retrying,
                m.stuck_channels,
                m.requeued,
            )
        )
    names = partner_names(session, {c.partner_id for c in ledger.totals if c.partner_id})
    rows = [
        ChannelRow(
            key=f"{c.channel}:{c.partner_id or 0}",
            channel=c.channel,
            partner_id=c.partner_id,
            partner=names.get(c.partner_id) if c.partner_id else None,
            counts=Counts.of(c),
        )
        for c in ledger.totals
    ]
    total = Counts()
    for r in rows:
        total.add(r.counts)
    return {
        "totals": rows,
        "sum": total,
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
    cap_event: str = ""
    cap_description: str = ""
    cap_instruction: str = ""
    cap_web: str = ""
    cap_contact: str = ""
    # (valueName, value) of the IPAWS profile: EAS-ORG, and the WEA texts in English.
    cap_parameters: list[tuple[str, str]] = field(default_factory=list)


def message_previews(case: Case, settings: Settings) -> list[LanguagePreview]:
    """Exactly what the first alert would say, per language: push, SMS and the CAP info the
    feeds publish (with the same renderers: channels.messages, alerts.feeds.cap and wea)."""
    alert = content.alert_content(case, messages.MessageKind.ALERT, 0, settings.case_link_base)
    infos = {i.language: i for i in feeds.alert_infos(settings, case)}
    out = []
    for lang in case.alert_languages:
        if lang not in messages.SUPPORTED_LANGUAGES:
            continue
        info = infos.get(lang)
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
                cap_headline=cap.headline(info.headline, info.description, lang)
                if info
                else messages.truncate_chars(r.title, CAP_HEADLINE_MAX),
                cap_event=cap.event(lang),
                cap_description=info.description if info else r.body,
                cap_instruction=info.instruction if info else "",
                cap_web=info.web if info else "",
                cap_contact=info.contact if info else "",
                cap_parameters=list(info.parameters) if info else [],
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
