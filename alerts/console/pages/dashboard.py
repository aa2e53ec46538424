"""The dashboard: open cases with state, time since last seen, current wave and reach."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from alerts.console import security, views
from alerts.console.web import Anyone, ConsoleRoute
from alerts.users.roles import Role

router = APIRouter(route_class=ConsoleRoute)


@router.get("/")
def dashboard(ctx: Anyone) -> Response:
    """Active cases (and, for police, those awaiting approval and drafts)."""
    assert ctx.user is not None
    groups = views.dashboard(ctx.db, ctx.user, ctx.is_police)
    prompt = ctx.role is Role.OFFICER and not security.totp_enrolled(ctx.db, ctx.user)
    return ctx.render("dashboard.html", groups=groups, views=views, totp_prompt=prompt)


@router.get("/dashboard/rows")
def dashboard_rows(ctx: Anyone) -> Response:
    """The case tables alone, for the page's polling script."""
    assert ctx.user is not None
    groups = views.dashboard(ctx.db, ctx.user, ctx.is_police)
    return ctx.render("_dashboard_rows.html", groups=groups, views=views)
