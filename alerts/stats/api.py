"""Operators read the outcome statistics: JSON, and the same rows as CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alerts.deps import OperatorUser, SessionDep, user_errors
from alerts.stats import service
from alerts.stats.schemas import StatsRead

router = APIRouter(prefix="/api/v1", tags=["statistics"])
OPERATORS = "Only operators and admins"
BAD_FILTER = "`from`, `to` or `agency`: not a YYYY-MM month or an agency id"

FromMonth = Annotated[
    str | None,
    Query(
        alias="from",
        pattern=service.MONTH_PATTERN,
        description="The first month counted (YYYY-MM, UTC, by closure); omitted: from the first",
        examples=["2026-01"],
    ),
]
ToMonth = Annotated[
    str | None,
    Query(
        alias="to",
        pattern=service.MONTH_PATTERN,
        description="The last month counted (YYYY-MM, UTC, by closure); omitted: up to now",
        examples=["2026-12"],
    ),
]
AgencyFilter = Annotated[
    int | None,
    Query(alias="agency", ge=1, le=2**31 - 1, description="Only this agency's cases", examples=[3]),
]


@router.get(
    "/stats",
    response_model=StatsRead,
    responses=user_errors({403: OPERATORS, 422: BAD_FILTER}),
)
def outcome_stats(
    session: SessionDep,
    _user: OperatorUser,
    from_month: FromMonth = None,
    to_month: ToMonth = None,
    agency_id: AgencyFilter = None,
) -> StatsRead:
    """Closed alerts by month and agency: cases, recovery rate, median time to recovery and
    the share found after a tip."""
    return service.report(session, from_month, to_month, agency_id)


@router.get(
    "/stats.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The rows as CSV, with a header"},
        **user_errors({403: OPERATORS, 422: BAD_FILTER}),
    },
)
def outcome_stats_csv(
    session: SessionDep,
    _user: OperatorUser,
    from_month: FromMonth = None,
    to_month: ToMonth = None,
    agency_id: AgencyFilter = None,
) -> Response:
    """The same statistics as CSV, one line per month and agency."""
    stats = service.report(session, from_month, to_month, agency_id)
    return Response(
        service.to_csv(stats),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="reunite-outcomes.csv"',
            "Cache-Control": "private, no-store",
        },
    )
