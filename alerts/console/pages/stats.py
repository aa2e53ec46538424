"""The operators' outcome statistics page and its CSV download (the same figures as
GET /api/v1/stats, for a console session)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from alerts.cases.outcome import Outcome
from alerts.console.web import Console, ConsoleRoute, Staff
from alerts.stats import service as stats
from alerts.users.models import Agency

router = APIRouter(route_class=ConsoleRoute)
MONTH = re.compile(stats.MONTH_PATTERN)


def _filters(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """The from/to/agency query filters as typed, and an error per field that is not valid."""
    values = {k: request.query_params.get(k, "").strip() for k in ("from", "to", "agency")}
    errors = {k: "v.month" for k in ("from", "to") if values[k] and not MONTH.match(values[k])}
    if values["agency"] and not values["agency"].isdigit():
        errors["agency"] = "v.invalid"
    return values, errors


def _report(ctx: Console, values: dict[str, str]):
    return stats.report(
        ctx.db,
        values["from"] or None,
        values["to"] or None,
        int(values["agency"]) if values["agency"] else None,
    )


@router.get("/stats")
def stats_page(request: Request, ctx: Staff) -> Response:
    """Closed alerts by month and agency: cases, recovery rate, median time, tip share."""
    values, errors = _filters(request)
    report = None if errors else _report(ctx, values)
    agencies = ctx.db.execute(select(Agency.id, Agency.name).order_by(Agency.name)).all()
    query = urlencode({k: v for k, v in values.items() if v})
    return ctx.render(
        "stats.html",
        status=422 if errors else 200,
        report=report,
        values=values,
        errors=errors,
        agencies=agencies,
        outcomes=[o.value for o in Outcome],
        csv_url="/console/stats.csv" + (f"?{query}" if query else ""),
    )


@router.get("/stats.csv")
def stats_csv(request: Request, ctx: Staff) -> Response:
    """The statistics page's rows as CSV."""
    values, errors = _filters(request)
    if errors:
        return Response("invalid filter: " + ", ".join(sorted(errors)), 422)
    return Response(
        stats.to_csv(_report(ctx, values)),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="reunite-outcomes.csv"',
            "Cache-Control": "private, no-store",
        },
    )
