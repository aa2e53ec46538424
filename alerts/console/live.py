"""A case's live status: what every case page polls (GET /console/cases/{id}/status).

One snapshot feeds both the rendered page and the JSON, so the numbers a page shows when it
loads and the ones the script writes into it later are the same computation. The JSON carries
no personal data (no name, no place): state, waves, ledger counts, partner names, who approved.

`text` maps each `data-live="<key>"` element of the page to its new text; `progress` maps a
message id to [done, targeted] for its `<progress>`; `layout` changes when rows, waves or
messages come or go (the script then fetches the page and swaps its live regions), and a new
`state` swaps the whole page (the "Submitted" page turns into the active view).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from alerts.cases.models import Case
from alerts.console import i18n, views
from alerts.users.models import User
from ops.platform.config import Settings

STATS = ("targeted", "sent", "failed", "retrying", "delivered", "withdrawn")


@dataclass
class Snapshot:
    """What a case page shows that changes on its own."""

    row: views.CaseRow
    waves: list[views.WaveView]
    delivery: dict[str, Any] | None
    approved_by: str | None
    approved_line: str
    since_approval: str
    layout: str
    status: dict[str, Any]


def approved_line(
    t: Callable[..., str], name: str | None, when: datetime | None, settings: Settings
) -> str:
    """ "approved by sup1 at 17:50" (the date too when it was not today, local time)."""
    if when is None:
        return ""
    zone = ZoneInfo(settings.timezone)
    local = when.astimezone(zone)
    today = datetime.now(UTC).astimezone(zone).date()
    at = local.strftime("%H:%M" if local.date() == today else "%Y-%m-%d %H:%M")
    return t("live.approved_by", name=name or "—", at=at)


def _layout(case: Case, waves: list[views.WaveView], delivery: dict[str, Any] | None) -> str:
    parts = [case.state, str(case.version), str(bool(case.approved_at))]
    parts += [f"w{w.id}:{w.status}" for w in waves]
    if delivery is not None:
        parts += [r.key for r in delivery["totals"]]
        parts += [
            f"{p.message_id}:{','.join(p.stuck)}:{bool(p.requeued)}" for p in delivery["waves"]
        ]
        parts += [f"{d.channel}:{d.reason}:{d.targets}" for d in delivery["dead_letters"]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def snapshot(
    session: Session, case: Case, t: Callable[..., str], lang: str, settings: Settings
) -> Snapshot:
    """The case's live status, for the page and for the JSON."""
    # The ledger is read once, by the delivery panel; the row takes its sum.
    row = views.case_row(session, case, show_names=False, totals={})
    waves = views.wave_views(session, case.id)
    delivery = views.delivery_panel(session, case.id, t) if case.approved_at else None
    total = delivery["sum"] if delivery is not None else views.Counts()
    row.counts = total
    approver = session.get(User, case.approved_by_id) if case.approved_by_id else None
    name = approver.username if approver is not None else None
    line = approved_line(t, name, case.approved_at, settings)
    since_approval = "—"
    if case.approved_at is not None:
        hours, minutes = views.elapsed(case.approved_at)
        since_approval = t("since", h=hours, m=minutes)

    def num(n: int) -> str:
        return i18n.number(n, lang)

    text: dict[str, str] = {
        "state": t(f"state.{case.state}"),
        "approved_by": line,
        "since_approval": since_approval,
        "since_seen": t("since", h=row.since[0], m=row.since[1]),
        "wave": views.wave_label(t, row.current),
        "next_wave": views.wave_label(t, row.upcoming),
    }
    for stat in STATS:
        text[stat] = num(getattr(total, stat))
    for w in waves:
        text[f"wave:{w.id}:targeted"] = num(w.targeted)
        text[f"wave:{w.id}:status"] = t(f"wave_status.{w.status}")
    progress: dict[str, list[int]] = {}
    channels: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    if delivery is not None:
        for r in delivery["totals"]:
            for stat in STATS:
                text[f"row:{r.key}:{stat}"] = num(getattr(r.counts, stat))
            channels.append(
                {
                    "channel": r.channel,
                    "partner_id": r.partner_id,
                    "partner": r.partner,
                    **asdict(r.counts),
                }
            )
        for p in delivery["waves"]:
            text[f"msg:{p.message_id}"] = f"{num(p.done)} / {num(p.targeted)}"
            progress[p.message_id] = [p.done, p.targeted]
            messages.append(
                {
                    "message_id": p.message_id,
                    "label": p.label,
                    "targeted": p.targeted,
                    "done": p.done,
                    "sent": p.sent,
                    "failed": p.failed,
                    "retrying": p.retrying,
                    "stuck": p.stuck,
                }
            )

    def wave_json(w: views.WaveView | None) -> dict[str, Any] | None:
        if w is None:
            return None
        return {"number": w.number, "epoch": w.epoch, "radius_km": w.radius_km, "status": w.status}

    layout = _layout(case, waves, delivery)
    approved_at = case.approved_at
    status = {
        "case_id": case.id,
        "state": case.state,
        "layout": layout,
        "approved_by": name,
        "approved_at": approved_at.isoformat() if approved_at else None,
        "seconds_since_approval": (
            int((datetime.now(UTC) - approved_at).total_seconds()) if approved_at else None
        ),
        "wave": wave_json(row.current),
        "next_wave": wave_json(row.upcoming),
        "waves": [{**(wave_json(w) or {}), "id": w.id, "targeted": w.targeted} for w in waves],
        "counts": asdict(total),
        "channels": channels,
        "messages": messages,
        "text": text,
        "progress": progress,
    }
    return Snapshot(row, waves, delivery, name, line, since_approval, layout, status)
