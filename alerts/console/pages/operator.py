"""Operator pages: radius rule sets (view, edit, validate, preview) and partner health."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import RedirectResponse, Response

from alerts.console import forms, views
from alerts.console.web import Console, ConsoleRoute, CsrfChecked, Staff
from alerts.partners.models import Partner
from channels import dlq, pacing
from channels.models import PartnerEndpoint, WebhookAttempt
from geo import rules
from geo.rulesets import service as rulesets
from geo.rulesets.schemas import RuleSetCreate, StepIn
from ops.platform.redis_client import get_redis

router = APIRouter(route_class=ConsoleRoute)
MAX_ROWS = 24
DEVICE_CHANNELS = ("apns", "fcm", "sms")


def _rows_of(read) -> list[dict]:
    rows = [{"up_to_minutes": s.up_to_minutes, "radius_km": f"{s.radius_km:g}"} for s in read.steps]
    return rows + [{"up_to_minutes": "", "radius_km": ""} for _ in range(2)]


def _rules_page(ctx: Console, status: int = 200, **extra) -> Response:
    current = rulesets.read(ctx.db)
    context = {
        "current": current,
        "history": rulesets.history(ctx.db)[:10],
        "rows": _rows_of(current),
        "max_radius": f"{current.max_radius_km:g}",
        "note": "",
        "late": current.alert_late_arrivals,
        "errors": {},
        "preview": None,
        "map_svg": None,
        "pv": {"lat": "23.1291", "lon": "113.2644", "minutes": "30"},
    }
    context.update(extra)
    # views.local shows the preview's wave times in the console's zone, not as raw UTC.
    return ctx.render("rules.html", status=status, views=views, **context)


@router.get("/rules")
def rules_page(ctx: Staff) -> Response:
    """The rule set in force, its history, the editor and the preview form."""
    return _rules_page(ctx)


ROW_FIELD = re.compile(r"steps\[(\d+)\]\.(up_to|up_to_minutes|radius_km)$")
# RuleError texts (geo.rules) -> catalogue key; {n} takes the first number, {row} the row.
RULE_MESSAGES = (
    ("must be a number", "v.number"),
    ("must be a positive duration", "v.positive"),
    ("must be greater than 0,", "v.positive"),
    ("must be at most", "v.ceiling"),
    ("must be later than", "v.rule_later"),
    ("must be greater than", "v.rule_greater"),
)


def _rule_error(ctx: Console, error: str) -> str:
    """A rule-set error ("steps[1].radius_km: must be greater than 100 (steps[0])") in the
    page's language, naming the row as the editor numbers it."""
    field, _, message = error.partition(": ")
    row = ROW_FIELD.search(field)
    if row:
        column = "rules.radius" if row.group(2) == "radius_km" else "rules.up_to"
        label = f"{ctx.t('rules.row', n=int(row.group(1)))} · {ctx.t(column)}"
    elif field.endswith("max_radius_km"):
        label = ctx.t("rules.max")
    else:
        label = field
    key = next((k for prefix, k in RULE_MESSAGES if message.startswith(prefix)), "v.invalid")
    number = re.search(r"(\d+(?:\.\d+)?)", message)
    earlier = re.search(r"steps\[(\d+)\]", message)
    text = ctx.t(
        key,
        n=number.group(1) if number else "",
        row=ctx.t("rules.row", n=int(earlier.group(1))) if earlier else "",
    )
    return f"{label}: {text}"


def _parse(form) -> tuple[list[dict], list[dict], str, dict[str, str]]:
    errors: dict[str, str] = {}
    raw_rows, steps = [], []
    count = min(int(form.get("rows") or 0) if str(form.get("rows", "")).isdigit() else 0, MAX_ROWS)
    for i in range(count):
        up, km = forms.text(form, f"up_to_minutes_{i}"), forms.text(form, f"radius_km_{i}")
        raw_rows.append({"up_to_minutes": up, "radius_km": km})
        if not up and not km:
            continue
        row = f"steps[{len(steps)}]"
        try:
            up_v = int(up)
        except ValueError:
            errors.setdefault("form", f"{row}.up_to_minutes: must be a number")
            continue
        try:
            km_v = float(km)
        except ValueError:
            errors.setdefault("form", f"{row}.radius_km: must be a number")
            continue
        steps.append({"up_to_minutes": up_v, "radius_km": km_v})
    max_raw = forms.text(form, "max_radius_km")
    try:
        top = float(max_raw)
    except ValueError:
        errors.setdefault("form", "max_radius_km: must be a number")
        top = 0.0
    return raw_rows, steps, max_raw, errors | ({"_top": str(top)} if not errors else {})


@router.post("/rules", dependencies=[CsrfChecked])
async def save_rules(request: Request, ctx: Staff) -> Response:
    """Validate the edited rule set (errors name the row); save it as a new version if asked."""
    assert ctx.user is not None
    form = await request.form(max_files=0, max_fields=120)
    raw_rows, steps, max_raw, errors = _parse(form)
    note = forms.text(form, "note")[:500]
    # An unticked checkbox sends nothing: absent means off.
    late = form.get("alert_late_arrivals") == "on"
    echo = {
        "rows": raw_rows + [{"up_to_minutes": "", "radius_km": ""}],
        "max_radius": max_raw,
        "note": note,
        "late": late,
    }
    if "form" in errors:
        return _rules_page(ctx, 422, errors={"form": _rule_error(ctx, errors["form"])}, **echo)
    top = float(errors.pop("_top"))
    rule_set = rules.RuleSet(
        steps=tuple(
            rules.Step(timedelta(minutes=s["up_to_minutes"]), s["radius_km"]) for s in steps
        ),
        max_radius_km=top,
    )
    try:
        rules.validate(rule_set, ctx.settings.radius_ceiling_km)
    except rules.RuleError as exc:
        return _rules_page(ctx, 422, errors={"form": _rule_error(ctx, str(exc))}, **echo)
    if form.get("action") != "save":
        return _rules_page(ctx, 200, valid=True, **echo)
    current = rulesets.read(ctx.db)
    try:
        rulesets.create_version(
            ctx.db,
            RuleSetCreate(
                steps=[StepIn(**s) for s in steps],
                max_radius_km=top,
                regions=current.regions,
                alert_late_arrivals=late,
                note=note,
            ),
            actor=f"user:{ctx.user.id}",
            ceiling_km=ctx.settings.radius_ceiling_km,
        )
    except rules.RuleError as exc:
        return _rules_page(ctx, 422, errors={"form": _rule_error(ctx, str(exc))}, **echo)
    return RedirectResponse("/console/rules?saved=1", status_code=303)


@router.post("/rules/preview", dependencies=[CsrfChecked])
async def preview_rules(request: Request, ctx: Staff) -> Response:
    """The rule set in force applied to a place and a time since loss: waves, map and reach."""
    form = await request.form(max_files=0, max_fields=10)
    pv = {k: forms.text(form, k) for k in ("lat", "lon", "minutes")}
    try:
        lat, lon, minutes = float(pv["lat"]), float(pv["lon"]), int(pv["minutes"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= minutes <= 60 * 24 * 30):
            raise ValueError
    except ValueError:
        return _rules_page(ctx, 422, pv=pv, errors={"preview": ctx.t("rules.preview_invalid")})
    last_seen = datetime.now(UTC) - timedelta(minutes=minutes)
    preview = views.reach_preview(ctx.db, lat, lon, last_seen)
    svg = views.preview_map(
        lat,
        lon,
        preview,
        ctx.settings,
        # Formatted per ring with its number and radius.
        wave_label=functools.partial(ctx.t, "map.wave"),
        point_label=ctx.t("map.point"),
        title=ctx.t("map.title"),
        first=6,
    )
    return _rules_page(ctx, pv=pv, preview=preview, map_svg=svg)


@router.get("/partners")
def partners_page(ctx: Staff) -> Response:
    """Partner endpoints with breaker state and recent error rate; dead letters with replay."""
    r = get_redis()
    s = ctx.settings.channels
    since = datetime.now(UTC) - timedelta(hours=1)
    stats: dict[tuple[int, str], int] = {}
    for partner_id, outcome, n in ctx.db.execute(
        select(WebhookAttempt.partner_id, WebhookAttempt.outcome, func.count())
        .where(WebhookAttempt.at >= since)
        .group_by(WebhookAttempt.partner_id, WebhookAttempt.outcome)
    ):
        stats[(partner_id, outcome)] = n
    partners = []
    for p in ctx.db.scalars(select(Partner).order_by(Partner.name)):
        endpoints = ctx.db.scalars(
            select(PartnerEndpoint).where(PartnerEndpoint.partner_id == p.id)
        ).all()
        total = sum(n for (pid, _), n in stats.items() if pid == p.id)
        ok = stats.get((p.id, "ok"), 0)
        partners.append(
            {
                "partner": p,
                "attempts": total,
                "error_rate": (total - ok) / total if total else None,
                "endpoints": [
                    {
                        "id": e.id,
                        "host": _host(e.url),
                        "active": e.active,
                        "breaker": pacing.Breaker(
                            r, f"webhook:{e.id}", s.breaker_failures, s.breaker_open_s
                        ).state(),
                    }
                    for e in endpoints
                ],
            }
        )
    channel_breakers = [
        (name, pacing.Breaker(r, name, s.breaker_failures, s.breaker_open_s).state())
        for name in DEVICE_CHANNELS
    ]
    letters = dlq.list_letters(ctx.db, limit=50)
    return ctx.render(
        "partners.html",
        partners=partners,
        channel_breakers=channel_breakers,
        letters=letters,
        views=views,
    )


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


@router.post("/partners/dead-letters/{letter_id}/replay", dependencies=[CsrfChecked])
def replay_letter(letter_id: int, ctx: Staff) -> Response:
    """Re-enqueue one dead letter's targets with a fresh retry horizon."""
    assert ctx.user is not None
    from ops.platform.audit import service as audit

    audit.record(
        ctx.db, actor=f"user:{ctx.user.id}", action="dlq.replayed", subject=f"dlq:{letter_id}"
    )
    try:
        dlq.replay(ctx.db, letter_id)
    except LookupError:
        from fastapi import HTTPException

        raise HTTPException(404, ctx.t("err.not_found")) from None
    return RedirectResponse("/console/partners", status_code=303)
