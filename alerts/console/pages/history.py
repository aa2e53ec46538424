"""The case list: every case of the officer's agencies, open and closed, filtered by state,
agency, date and text, and paginated.

The filter form posts (with the CSRF token) rather than putting its text in a URL: a child's
name typed into the search box must never reach an access log, a proxy log or browser history.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from starlette.responses import Response

from alerts.cases import history
from alerts.console import forms, views
from alerts.console.web import Console, ConsoleRoute, CsrfChecked, Police

router = APIRouter(route_class=ConsoleRoute)


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _int(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _filter(echo: dict[str, str]) -> history.CaseFilter:
    return history.CaseFilter(
        state=echo["state"] if echo["state"] in history.STATE_FILTERS else "",
        agency_id=_int(echo["agency"]),
        date_from=_date(echo["from"]),
        date_to=_date(echo["to"]),
        text=echo.get("q", "")[: history.TEXT_MAX],
        page=_int(echo["page"]) or 1,
    )


def _page(ctx: Console, wanted: history.CaseFilter, echo: dict[str, str]) -> Response:
    assert ctx.user is not None
    result = history.search(ctx.db, ctx.user, wanted, ctx.settings.timezone)
    return ctx.render(
        "history.html",
        result=result,
        f=echo,
        states=history.STATE_FILTERS[1:],
        views=views,
    )


@router.get("/history")
def case_list(request: Request, ctx: Police) -> Response:
    """Every case of the officer's agencies, newest first. The query string may carry the
    non-personal filters (e.g. ?state=closed, a link to the closed cases), never text."""
    echo = {k: request.query_params.get(k, "")[:20] for k in ("state", "agency", "from", "to")}
    echo["page"] = request.query_params.get("page", "")[:9]
    return _page(ctx, _filter(echo), echo)


@router.post("/history", dependencies=[CsrfChecked])
async def case_list_filtered(request: Request, ctx: Police) -> Response:
    """The case list filtered; the text stays in the request body, out of every URL and log."""
    form = await request.form(max_files=0, max_fields=12)
    echo = {k: forms.text(form, k) for k in ("state", "agency", "from", "to", "q", "page")}
    return _page(ctx, _filter(echo), echo)
