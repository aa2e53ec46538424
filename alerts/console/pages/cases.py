"""New case, the case page (edit draft, submit, sighting, resolve, cancel), delivery panel
and photo thumbnails."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import JSONResponse, RedirectResponse, Response

from alerts.cases import history
from alerts.cases import outcome as outcomes
from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.schemas import CaseCreate, CaseUpdate, Photo
from alerts.console import forms, live, photos, views
from alerts.console.models import ConsolePhoto
from alerts.console.web import Console, ConsoleRoute, CsrfChecked, Police
from alerts.dispatch import flows
from alerts.dispatch.schemas import SightingCreate
from ops.platform.outbox import relay

router = APIRouter(route_class=ConsoleRoute)
REF = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _too_large(request: Request, ctx: Console) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > ctx.settings.photo_max_bytes + photos.FORM_SLACK


async def _case_form(request: Request, ctx: Console) -> tuple[Any, bool]:
    """The posted case form and whether its photo is over the limit. An oversize body is
    read for its text fields only (the photo discarded as it streams), so the page that
    refuses the photo keeps everything else the officer typed."""
    if _too_large(request, ctx):
        content_type = request.headers.get("content-type", "")
        return await forms.text_fields(request.stream(), content_type), True
    form = await request.form(max_files=2, max_fields=80)
    return form, _photo_too_large(form, ctx)


def _size_error(ctx: Console) -> forms.FieldErrors:
    return {"photo": ("v.photo_size", {"mb": ctx.settings.photo_max_bytes // 2**20})}


def _echo(form, payload: dict, ctx: Console) -> dict:
    """The form's values to show again; a kept photo only if it is this user's pending one."""
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    values["languages"] = payload["alert_languages"]
    assert ctx.user is not None
    if photos.pending(ctx.db, values.pop("photo_ref", ""), ctx.user) is not None:
        values["photo_ref"] = forms.text(form, "photo_ref")
    return values


def _kept_photo(form, ctx: Console, errors: forms.FieldErrors) -> Photo | None:
    """The photo kept from an earlier attempt (hidden field photo_ref), if it is this user's
    upload that no case holds yet; any other ref is refused on the photo field."""
    ref = forms.text(form, "photo_ref")
    if not ref:
        return None
    assert ctx.user is not None
    row = photos.pending(ctx.db, ref, ctx.user)
    if row is None:
        errors["photo"] = ("v.photo_missing", {})
        return None
    return Photo(ref=row.ref, content_type=row.content_type)


def _photo_too_large(form, ctx: Console) -> bool:
    # Checked before anything else: an oversized upload is refused whatever else is wrong.
    upload = form.get("photo")
    size = getattr(upload, "size", None)
    return size is not None and size > ctx.settings.photo_max_bytes


async def _photo_from(form, ctx: Console, errors: forms.FieldErrors) -> Photo | None:
    upload = form.get("photo")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return None
    limit = ctx.settings.photo_max_bytes
    data = await upload.read(limit + 1)
    try:
        if len(data) > limit:
            raise photos.PhotoRejected("size", "too large")
        assert ctx.user is not None
        stored = photos.store(ctx.db, data, ctx.user, ctx.settings)
    except photos.PhotoRejected as exc:
        key = (
            "v.photo_size"
            if exc.code == "size"
            else ("v.photo_bomb" if exc.code == "bomb" else "v.photo_type")
        )
        errors["photo"] = (key, {"mb": limit // (1024 * 1024)})
        return None
    return Photo(ref=stored.ref, content_type=stored.content_type)


def _form_page(ctx: Console, status: int, **context) -> Response:
    return ctx.render(
        "case_form.html",
        status=status,
        photo_max_bytes=ctx.settings.photo_max_bytes,
        now_local=datetime.now(UTC).astimezone(views.ZoneInfo(ctx.settings.timezone)),
        **context,
    )


@router.get("/cases/new")
def new_case_page(ctx: Police) -> Response:
    """The new-case form."""
    return _form_page(ctx, 200, values={"languages": ["zh-CN", "en"]}, errors={}, case=None)


@router.post("/cases", dependencies=[CsrfChecked])
async def create_case(request: Request, ctx: Police) -> Response:
    """Validate, store the photo, create the draft, and submit it when asked."""
    form, oversize = await _case_form(request, ctx)
    payload, errors = forms.case_payload(form, ctx.settings.timezone)
    values = _echo(form, payload, ctx)
    if oversize:
        # Refused whatever else is wrong; everything else typed comes back.
        return _form_page(
            ctx, 413, values=values, errors=_size_error(ctx), case=None, too_large=True
        )
    data = None
    try:
        data = CaseCreate.model_validate(payload)
    except ValidationError as exc:
        errors = {**forms.validation_errors(exc), **errors}
    # The photo is stored even when other fields are wrong: the form keeps it (photo_ref).
    photo = await _photo_from(form, ctx, errors) or _kept_photo(form, ctx, errors)
    if photo is not None:
        values["photo_ref"] = photo.ref
    if errors:
        status = 413 if errors.get("photo", ("",))[0] == "v.photo_size" else 422
        return _form_page(ctx, status, values=values, errors=errors, case=None)
    assert data is not None and ctx.user is not None
    if photo is not None:
        data.photos = [photo]
    try:
        # A savepoint: a refused case leaves nothing behind but the kept photo.
        with ctx.db.begin_nested():
            case = cases.create(ctx.db, data, ctx.user, ctx.settings)
    except cases.InvalidCase as exc:
        field = forms.LOCATIONS.get(tuple(exc.field.split(".")), exc.field)
        errors[field] = forms.message_key(str(exc).split(": ", 1)[-1])
        return _form_page(ctx, 422, values=values, errors=errors, case=None)
    if form.get("action") == "submit":
        cases.submit(ctx.db, case.id, ctx.user)
    return _see_other(f"/console/cases/{case.id}")


def _values_of(case, ctx: Console) -> dict:
    read = cases.to_read(case)
    child = read.child.model_dump() if read.child else {}
    ls = read.last_seen
    tz = views.ZoneInfo(ctx.settings.timezone)
    values = {
        "child_name": child.get("name", ""),
        "sex": child.get("sex", ""),
        "age_years": child.get("age_years") or "",
        "date_of_birth": child.get("date_of_birth") or "",
        "height_cm": child.get("height_cm") or "",
        "weight_kg": child.get("weight_kg") or "",
        "appearance": child.get("appearance", ""),
        "clothing": child.get("clothing", ""),
        "distinguishing_marks": child.get("distinguishing_marks", ""),
        "last_seen_at": ls.at.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if ls else "",
        "lat": ls.lat if ls else "",
        "lon": ls.lon if ls else "",
        "address": ls.address if ls else "",
        "circumstances": ls.circumstances if ls else "",
        "tip_line": read.tip_line,
        "languages": [str(lang) for lang in read.alert_languages],
        "vehicle_description": read.vehicle.description if read.vehicle else "",
        "vehicle_plate": read.vehicle.plate if read.vehicle else "",
        "vehicle_colour": read.vehicle.colour if read.vehicle else "",
        "suspect_description": read.suspect.description if read.suspect else "",
    }
    return values


@router.get("/cases/{case_id}")
def case_page(case_id: str, ctx: Police) -> Response:
    """A case: details, waves, delivery panel and the actions its state allows."""
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)
    return _case_page(ctx, case)


def _case_page(ctx: Console, case, status: int = 200, **extra) -> Response:
    read = cases.to_read(case)
    active = case.state == CaseState.ACTIVE
    now = live.snapshot(ctx.db, case, ctx.t, ctx.lang, ctx.settings)
    return ctx.render(
        "case.html",
        status=status,
        case=read,
        row=now.row,
        live=now,
        waves=now.waves,
        delivery=now.delivery,
        values=extra.pop("values", _values_of(case, ctx)),
        errors=extra.pop("errors", {}),
        active=active,
        views=views,
        photo_max_bytes=ctx.settings.photo_max_bytes,
        drill=views.drill_of(ctx.db, case.id),
        changes=views.pending_changes(ctx.db, case.id),
        timeline=history.timeline(ctx.db, case),
        origin=history.origin(case),
        found_outcomes=[o.value for o in outcomes.FOUND],
        cancel_outcomes=[o.value for o in outcomes.CANCELLED],
        **extra,
    )


@router.get("/cases/{case_id}/delivery")
def delivery_fragment(case_id: str, ctx: Police) -> Response:
    """The waves and delivery panel alone (HTML)."""
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)
    return ctx.render(
        "_delivery.html",
        case=cases.to_read(case),
        waves=views.wave_views(ctx.db, case.id),
        delivery=views.delivery_panel(ctx.db, case.id, ctx.t) if case.approved_at else None,
        views=views,
    )


@router.get("/cases/{case_id}/status")
def case_status(case_id: str, ctx: Police) -> Response:
    """The case's live status as JSON, polled by every case page: state, approver, time since
    approval, current and next wave, ledger counts per channel and partner and per message
    (see alerts.console.live). Same police and agency checks as the case page; never cached."""
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)
    now = live.snapshot(ctx.db, case, ctx.t, ctx.lang, ctx.settings)
    return JSONResponse(now.status, headers={"Cache-Control": "no-store"})


@router.post("/cases/{case_id}/edit", dependencies=[CsrfChecked])
async def edit_case(case_id: str, request: Request, ctx: Police) -> Response:
    """Change a draft, or correct an active case (which sends an update); PATCH semantics."""
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)
    form, oversize = await _case_form(request, ctx)
    payload, errors = forms.case_payload(form, ctx.settings.timezone)
    if oversize:
        values = _echo(form, payload, ctx)
        return _case_page(ctx, case, 413, values=values, errors=_size_error(ctx), too_large=True)
    current = cases.to_read(case).model_dump()
    if current.get("child"):
        # Fields the form does not show (e.g. languages spoken) keep their values.
        payload["child"] = {**current["child"], **payload["child"]}
    changed = forms.diff(CaseUpdate, payload, current)
    values = _echo(form, payload, ctx)
    update = None
    try:
        update = CaseUpdate.model_validate(changed)
    except ValidationError as exc:
        errors = {**forms.validation_errors(exc), **errors}
    # Stored even when other fields are wrong: the form keeps it (photo_ref).
    photo = await _photo_from(form, ctx, errors) or _kept_photo(form, ctx, errors)
    if photo is not None:
        values["photo_ref"] = photo.ref
    if errors:
        return _case_page(ctx, case, 422, values=values, errors=errors)
    assert update is not None
    if photo is not None:
        update.photos = [*[Photo(**p) for p in current["photos"]], photo][-10:]
    if update.model_fields_set or photo is not None:
        try:
            with ctx.db.begin_nested():  # a refused change keeps the stored photo
                cases.update(ctx.db, case_id, update, ctx.user, ctx.settings)
        except cases.InvalidCase as exc:
            field = forms.LOCATIONS.get(tuple(exc.field.split(".")), exc.field)
            errors[field] = forms.message_key(str(exc).split(": ", 1)[-1])
            return _case_page(
                ctx, cases.get(ctx.db, case_id, ctx.user), 422, values=values, errors=errors
            )
    return _see_other(f"/console/cases/{case_id}")


@router.post("/cases/{case_id}/changes/{change_id}/{decision}", dependencies=[CsrfChecked])
def decide_change(
    case_id: str, change_id: int, decision: str, ctx: Police, background: BackgroundTasks
) -> Response:
    """A second supervisor approves or rejects a pending change to the live alert."""
    assert ctx.user is not None
    if decision not in ("approve", "reject"):
        raise HTTPException(404, ctx.t("err.not_found"))
    flows.decide_change(ctx.db, case_id, change_id, ctx.user, approve=decision == "approve")
    ctx.db.commit()
    background.add_task(relay.relay_now)
    return _see_other(f"/console/cases/{case_id}")


@router.post("/cases/{case_id}/submit", dependencies=[CsrfChecked])
def submit_case(case_id: str, ctx: Police) -> Response:
    """Send a draft to a supervisor."""
    assert ctx.user is not None
    cases.submit(ctx.db, case_id, ctx.user)
    return _see_other(f"/console/cases/{case_id}")


@router.post("/cases/{case_id}/sightings", dependencies=[CsrfChecked])
async def add_sighting(
    case_id: str, request: Request, ctx: Police, background: BackgroundTasks
) -> Response:
    """A new last-seen place: pending waves are cancelled and restart from there."""
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)
    form = await request.form(max_files=0, max_fields=20)
    errors: forms.FieldErrors = {}
    at_raw = forms.text(form, "at")
    payload = {
        "at": forms.local_time(at_raw, ctx.settings.timezone) if at_raw else None,
        "lat": forms._number(form, "lat", errors),
        "lon": forms._number(form, "lon", errors),
        "address": forms.text(form, "address") or None,
        "note": forms.text(form, "note") or None,
    }
    try:
        body = SightingCreate.model_validate(payload)
    except ValidationError as exc:
        errors = {**forms.validation_errors(exc), **errors}
    if errors:
        sighting = {k: v for k, v in form.items() if isinstance(v, str)}
        return _case_page(ctx, case, 422, sighting_errors=errors, sighting=sighting)
    if (
        case.state == CaseState.ACTIVE
        and body.at >= case.last_seen_at
        and flows.moves_too_far(case, body.lat, body.lon)
    ):
        # Two-person rule: a second supervisor decides (shown on the case page).
        cases.propose(
            ctx.db, case, cases.ChangeKind.SIGHTING, body.model_dump(mode="json"), ctx.user
        )
        ctx.db.commit()
        return _see_other(f"/console/cases/{case_id}")
    try:
        flows.add_sighting(
            ctx.db,
            case_id,
            at=body.at,
            lat=body.lat,
            lon=body.lon,
            address=body.address,
            note=body.note,
            user_id=ctx.user.id,
        )
    except flows.WaveConflict:
        raise HTTPException(409, ctx.t("err.conflict")) from None
    except flows.SightingRefused as exc:
        ctx.db.rollback()
        sighting = {k: v for k, v in form.items() if isinstance(v, str)}
        errors = {exc.field: ("v.sighting_too_early", {})}
        return _case_page(ctx, case, 422, sighting_errors=errors, sighting=sighting)
    ctx.db.commit()
    background.add_task(relay.relay_now)
    return _see_other(f"/console/cases/{case_id}")


def _outcome(form, allowed: tuple[outcomes.Outcome, ...]) -> outcomes.Outcome | None:
    """The outcome chosen on a closing form, or None if missing or not one of those offered."""
    chosen = forms.text(form, "outcome")
    return next((o for o in allowed if o.value == chosen), None)


@router.post("/cases/{case_id}/resolve", dependencies=[CsrfChecked])
async def resolve_case(
    case_id: str, request: Request, ctx: Police, background: BackgroundTasks
) -> Response:
    """The child is found: close the case on every channel; the outcome is required."""
    assert ctx.user is not None
    form = await request.form(max_files=0, max_fields=8)
    outcome = _outcome(form, outcomes.FOUND)
    if outcome is None:
        case = cases.get(ctx.db, case_id, ctx.user)
        return _case_page(ctx, case, 422, resolve_error=ctx.t("v.required"))
    cases.resolve(
        ctx.db,
        case_id,
        ctx.user,
        forms.text(form, "reason")[:1000] or None,
        outcome,
        tip_contributed=forms.text(form, "tip_contributed") == "1",
    )
    ctx.db.commit()
    background.add_task(relay.relay_now)
    return _see_other(f"/console/cases/{case_id}")


@router.post("/cases/{case_id}/cancel", dependencies=[CsrfChecked])
async def cancel_case(
    case_id: str, request: Request, ctx: Police, background: BackgroundTasks
) -> Response:
    """Withdraw a case; the reason and the outcome are required."""
    assert ctx.user is not None
    form = await request.form(max_files=0, max_fields=8)
    reason = forms.text(form, "reason")[:1000]
    outcome = _outcome(form, outcomes.CANCELLED)
    if not reason or outcome is None:
        case = cases.get(ctx.db, case_id, ctx.user)
        return _case_page(
            ctx,
            case,
            422,
            cancel_error=None if reason else ctx.t("v.reason"),
            cancel_outcome_error=None if outcome else ctx.t("v.required"),
        )
    cases.cancel(ctx.db, case_id, ctx.user, reason, outcome)
    ctx.db.commit()
    background.add_task(relay.relay_now)
    return _see_other(f"/console/cases/{case_id}")


@router.get("/photos/{ref}/thumb")
def photo_thumb(ref: str, ctx: Police) -> Response:
    """A thumbnail for police of the photo's agency or an agency above it (never the original)."""
    assert ctx.user is not None
    if not REF.match(ref):
        raise HTTPException(404, ctx.t("err.not_found"))
    row = ctx.db.scalar(select(ConsolePhoto).where(ConsolePhoto.ref == ref))
    if row is None or row.agency_id not in cases.visible_agencies(ctx.db, ctx.user):
        raise HTTPException(404, ctx.t("err.not_found"))
    data = photos.thumbnail(ctx.settings, ref)
    if data is None:
        raise HTTPException(404, ctx.t("err.not_found"))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})
