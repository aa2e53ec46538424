"""A case's reach report in the console: the API's report as a page, its map of H3 cells
(polygons on the case map's Leaflet layer), its plot and its CSV, for police of the agency."""

from __future__ import annotations

import h3
from fastapi import APIRouter
from sqlalchemy import select
from starlette.responses import Response

from alerts.cases import service as cases
from alerts.console import i18n
from alerts.console.web import Console, ConsoleRoute, Police
from alerts.partners.models import Partner
from alerts.reach import export, plot
from alerts.reach import service as reach

router = APIRouter(route_class=ConsoleRoute)
NO_STORE = {"Cache-Control": "no-store"}


def _report(ctx: Console, case_id: str):
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)  # 404 outside the user's agencies
    return case, reach.report(ctx.db, case.id, ctx.settings)


def cell_map(ctx: Console, report) -> dict:
    """The shown cells as map rings (the console map draws `rings` as polygons)."""
    rings = []
    for c in report.cells:
        sent = ctx.t("reach.below_floor") if c.sent is None else f"{c.sent:,}"
        rings.append(
            {
                "label": ctx.t("reach.cell_label", targeted=f"{c.targeted:,}", sent=sent),
                "polygon": [[round(a, 5), round(b, 5)] for a, b in h3.cell_to_boundary(c.cell)],
                "status": "started",
                "cell": c.cell,
            }
        )
    return {"rings": rings, "points": []}


@router.get("/cases/{case_id}/reach")
def reach_page(case_id: str, ctx: Police) -> Response:
    """The case's reach: per wave, channel and partner, times to 50/90/99 %, partners' own
    counts, the cell map above the k floor, and the plot (numbers only)."""
    case, report = _report(ctx, case_id)
    page = ctx.render(
        "reach.html",
        case=cases.to_read(case),
        report=report,
        cells=cell_map(ctx, report),
        partners=dict(ctx.db.execute(select(Partner.id, Partner.name)).all()),
        num=lambda n: i18n.number(n, ctx.lang),
    )
    page.headers.update(NO_STORE)
    return page


@router.get("/cases/{case_id}/reach.png")
def reach_png(case_id: str, ctx: Police) -> Response:
    """The reach plot (PNG); axis labels in English (the plot's font has no CJK glyphs)."""
    _case, report = _report(ctx, case_id)
    image = plot.png(report, {**plot.LABELS, "title": f"Reach of case {case_id[:8]}"})
    return Response(image, media_type="image/png", headers=NO_STORE)


@router.get("/cases/{case_id}/reach.csv")
def reach_csv(case_id: str, ctx: Police) -> Response:
    """The reach report as CSV (the API's table)."""
    _case, report = _report(ctx, case_id)
    return Response(
        export.csv_text(report),
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="reach-{case_id}.csv"'},
    )
