"""Tips on the case page: the live list (newest first), triage, promotion, tip photos.

The panel is alerts/console/templates/_tips.html, included by one line in case.html; it gets
its data through the `tips_panel` template global registered here, so the case page's own
route needs no change. alerts/console/static/tips.js polls `.../tips/status` and reloads the
list only when something changed and nobody is typing in it.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from alerts.console import forms, views
from alerts.console.pages import cases as case_pages
from alerts.console.web import TEMPLATES, Console, ConsoleRoute, CsrfChecked, Police
from alerts.partners.models import Partner
from alerts.tips import service as tips
from alerts.tips import triage as rules
from alerts.tips.models import Tip
from alerts.tips.triage import TipState
from ops.platform.outbox import relay

router = APIRouter(route_class=ConsoleRoute)


def _view(ctx: Console, tip: Tip, partners: dict[int, str], active: bool) -> dict:
    state = TipState(tip.state)
    promoted = tip.promoted_at is not None
    located = tip.lat is not None and tip.lon is not None
    change = tips.pending_change(ctx.db, tip)
    return {
        "id": tip.id,
        "state": state.value,
        "source": tip.source,
        "partner": partners.get(tip.partner_id or 0),
        "received": views.local(tip.received_at, ctx.settings),
        "seen": views.local(tip.seen_at, ctx.settings),
        "lat": tip.lat,
        "lon": tip.lon,
        "accuracy_m": tip.accuracy_m,
        "text": tip.text,
        "photo": tip.photo_ref is not None,
        "callback": tips.callback_of(ctx.settings, tip),
        "dismiss_reason": tip.dismiss_reason,
        "promoted": promoted,
        "sighting_id": tip.sighting_id,
        "change_state": change.state if change is not None else None,
        "erased": tip.erased_at is not None,
        "moves": sorted(s.value for s in rules.ALLOWED[state]) if active and not promoted else [],
        "promotable": active and rules.promotable(state, located, promoted) is None,
    }


def tips_panel(ctx: Console, case) -> dict:
    """What the tips panel shows for a case the user may see (case: a row or a CaseRead)."""
    rows = tips.tips_of(ctx.db, case.id)
    ids = {t.partner_id for t in rows if t.partner_id}
    partners = (
        dict(ctx.db.execute(select(Partner.id, Partner.name).where(Partner.id.in_(ids))).all())
        if ids
        else {}
    )
    active = case.state == CaseState.ACTIVE
    token, new = tips.poll_token(ctx.db, case.id)
    return {
        "case_id": case.id,
        "public": case.approved_at is not None,
        "token": token,
        "new": new,
        "items": [_view(ctx, t, partners, active) for t in rows],
    }


TEMPLATES.env.globals["tips_panel"] = tips_panel


def _case(ctx: Console, case_id: str) -> Case:
    assert ctx.user is not None
    return cases.get(ctx.db, case_id, ctx.user)


@router.get("/cases/{case_id}/tips")
def tips_fragment(case_id: str, ctx: Police) -> Response:
    """The tips list alone, for the panel's refresh."""
    case = _case(ctx, case_id)
    return ctx.render("_tips_list.html", case=case, panel=tips_panel(ctx, case))


@router.get("/cases/{case_id}/tips/status")
def tips_status(case_id: str, ctx: Police) -> Response:
    """A token that changes whenever a tip arrives or is triaged, and how many are new."""
    case = _case(ctx, case_id)
    token, new = tips.poll_token(ctx.db, case.id)
    return JSONResponse({"token": token, "new": new}, headers={"Cache-Control": "no-store"})


def _back(case_id: str, tip_id: int) -> Response:
    return RedirectResponse(f"/console/cases/{case_id}#tip-{tip_id}", status_code=303)


def _refused(ctx: Console, case_id: str, tip_id: int, exc: tips.TipRefused) -> Response:
    ctx.db.rollback()
    case = _case(ctx, case_id)
    message = ctx.t("tips.refused", field=exc.field, msg=str(exc))
    return case_pages._case_page(ctx, case, exc.status, tip_error=(tip_id, message))


@router.post("/cases/{case_id}/tips/{tip_id}/triage", dependencies=[CsrfChecked])
async def triage_tip(case_id: str, tip_id: int, request: Request, ctx: Police) -> Response:
    """Mark a tip seen, credible or dismissed (a dismissal needs a reason), or reopen it."""
    assert ctx.user is not None
    form = await request.form(max_files=0, max_fields=5)
    try:
        target = TipState(forms.text(form, "state"))
    except ValueError:
        raise HTTPException(422, "state: choose seen, credible or dismissed") from None
    try:
        tips.triage(ctx.db, case_id, tip_id, target, ctx.user, forms.text(form, "reason"))
    except tips.TipRefused as exc:
        return _refused(ctx, case_id, tip_id, exc)
    ctx.db.commit()
    return _back(case_id, tip_id)


@router.post("/cases/{case_id}/tips/{tip_id}/promote", dependencies=[CsrfChecked])
def promote_tip(case_id: str, tip_id: int, ctx: Police, background: BackgroundTasks) -> Response:
    """Make a credible tip the case's new sighting (held for a second supervisor if far)."""
    assert ctx.user is not None
    try:
        tips.promote(ctx.db, case_id, tip_id, ctx.user)
    except tips.TipRefused as exc:
        return _refused(ctx, case_id, tip_id, exc)
    ctx.db.commit()
    background.add_task(relay.relay_now)
    return _back(case_id, tip_id)


@router.get("/tips/{tip_id}/photo")
def tip_photo(tip_id: int, ctx: Police, thumb: bool = True) -> Response:
    """A tip's sanitised photo (thumbnail by default), for police who may see its case."""
    assert ctx.user is not None
    tip = ctx.db.get(Tip, tip_id)
    if tip is None:
        raise HTTPException(404, "not found")
    _case(ctx, tip.case_id)  # 404 unless the case is in the user's agencies
    data = tips.photo(ctx.settings, tip, thumb=thumb)
    if data is None:
        raise HTTPException(404, "not found")
    media = "image/jpeg" if thumb else (tip.photo_content_type or "application/octet-stream")
    return Response(data, media_type=media, headers={"Cache-Control": "private, no-store"})
