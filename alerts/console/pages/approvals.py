"""The supervisor's queue: exactly what will go out, then approve or reject with a reason."""

from __future__ import annotations

import functools

from fastapi import APIRouter, BackgroundTasks, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from alerts.console import forms, live, views
from alerts.console.web import Console, ConsoleRoute, CsrfChecked, Supervisor
from alerts.users.models import User
from ops.platform.outbox import relay

router = APIRouter(route_class=ConsoleRoute)


@router.get("/approvals")
def queue(ctx: Supervisor) -> Response:
    """Submitted cases of the supervisor's agencies, oldest first."""
    assert ctx.user is not None
    rows = (
        ctx.db.scalars(
            select(Case)
            .where(
                Case.state == CaseState.SUBMITTED.value,
                Case.agency_id.in_(cases.visible_agencies(ctx.db, ctx.user)),
            )
            .order_by(Case.submitted_at)
        )
        .unique()
        .all()
    )
    return ctx.render(
        "approvals.html", rows=[views.case_row(ctx.db, c, True) for c in rows], cases=rows
    )


def _review(ctx: Console, case_id: str, status: int = 200, **extra) -> Response:
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)
    preview = views.reach_preview(ctx.db, case.last_seen_lat, case.last_seen_lon, case.last_seen_at)
    svg = views.preview_map(
        case.last_seen_lat,
        case.last_seen_lon,
        preview,
        ctx.settings,
        # Formatted per ring with its number and radius.
        wave_label=functools.partial(ctx.t, "map.wave"),
        point_label=ctx.t("map.last_seen"),
        title=ctx.t("map.title"),
    )
    approver = ctx.db.get(User, case.approved_by_id) if case.approved_by_id else None
    return ctx.render(
        "review.html",
        status=status,
        case=cases.to_read(case),
        row=views.case_row(ctx.db, case, True),
        previews=views.message_previews(case, ctx.settings),
        preview=preview,
        map_svg=svg,
        own=case.submitted_by_id == ctx.user.id,
        approved_line=live.approved_line(
            ctx.t,
            approver.username if approver is not None else None,
            case.approved_at,
            ctx.settings,
        ),
        drill=views.drill_of(ctx.db, case.id),
        views=views,
        **extra,
    )


@router.get("/cases/{case_id}/review")
def review(case_id: str, ctx: Supervisor) -> Response:
    """The whole case (photo and every field), push, SMS and the CAP info per language as
    they will go out, map and reach."""
    return _review(ctx, case_id)


@router.post("/cases/{case_id}/approve", dependencies=[CsrfChecked])
def approve(case_id: str, ctx: Supervisor, background: BackgroundTasks) -> Response:
    """Approve (the two-person rule is the foundation's: a self-approval is refused)."""
    assert ctx.user is not None
    cases.approve(ctx.db, case_id, ctx.user)
    ctx.db.commit()
    background.add_task(relay.relay_now)
    return RedirectResponse(f"/console/cases/{case_id}", status_code=303)


@router.post("/cases/{case_id}/reject", dependencies=[CsrfChecked])
async def reject(case_id: str, request: Request, ctx: Supervisor) -> Response:
    """Send the case back to its author with a reason."""
    assert ctx.user is not None
    form = await request.form(max_files=0, max_fields=5)
    reason = forms.text(form, "reason")[:1000]
    if not reason:
        return _review(ctx, case_id, 422, reject_error=ctx.t("v.reason"))
    cases.reject(ctx.db, case_id, ctx.user, reason)
    return RedirectResponse("/console/approvals", status_code=303)
