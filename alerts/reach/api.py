"""The reach report over HTTP (JSON, CSV, PNG) and partners' own reach reports."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from alerts.cases import models as case_models
from alerts.cases import service as cases
from alerts.deps import (
    CurrentUser,
    ReachWriter,
    SessionDep,
    SettingsDep,
    partner_errors,
    user_errors,
)
from alerts.reach import export, plot, schemas
from alerts.reach import service as reach
from alerts.users.roles import Role

router = APIRouter(prefix="/api/v1/cases", tags=["reach"])
partner_router = APIRouter(prefix="/api/v1/partner", tags=["partner reach"])
STAFF = frozenset({Role.OPERATOR, Role.ADMIN})
NO_STORE = {"Cache-Control": "no-store"}
NOT_FOUND = user_errors(
    {404: "No such case (police users: none in their agency or the agencies below it)"}
)


def _report(session, case_id: str, user, settings) -> schemas.ReachReport:
    if Role(user.role) not in STAFF:
        cases.get(session, case_id, user)  # police: only cases of their agency (404 otherwise)
    elif session.get(case_models.Case, case_id) is None:
        raise cases.CaseNotFound(f"case {case_id} not found")
    return reach.report(session, case_id, settings)


@router.get("/{case_id}/reach", response_model=schemas.ReachReport, responses=NOT_FOUND)
def case_reach(
    case_id: str, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> JSONResponse:
    """Devices targeted, sent and delivered per message, channel and partner; time to 50, 90
    and 99 % sent; partners' own reach; devices per H3 cell above the k floor; sent over time.
    Numbers and ids only; never cached."""
    report = _report(session, case_id, user, settings)
    return JSONResponse(report.model_dump(mode="json"), headers=NO_STORE)


@router.get(
    "/{case_id}/reach.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The report as CSV"}, **NOT_FOUND},
)
def case_reach_csv(
    case_id: str, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> Response:
    """The reach report as one CSV table (column `row`: wave, channel, partner_report, cell)."""
    report = _report(session, case_id, user, settings)
    return Response(
        export.csv_text(report),
        media_type="text/csv; charset=utf-8",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="reach-{case_id}.csv"',
        },
    )


@router.get(
    "/{case_id}/reach.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "Sent over time"}, **NOT_FOUND},
)
def case_reach_png(
    case_id: str, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> Response:
    """Devices sent and delivered over time, as a PNG drawn on the server."""
    report = _report(session, case_id, user, settings)
    image = plot.png(report, {**plot.LABELS, "title": f"Reach of case {case_id}"})
    return Response(image, media_type="image/png", headers=NO_STORE)


@partner_router.post(
    "/messages/{message_id}/reach",
    response_model=schemas.PartnerReachRead,
    responses=partner_errors(
        "reach:write",
        {404: "`message_id`: no message with this id"},
        {413: "The request is larger than REUNITE_BODY_MAX_BYTES"},
        {
            422: "A field is invalid, named in `detail[].field` (`impressions`, `opened`, "
            "`reported_at`)"
        },
    ),
)
async def report_reach(
    message_id: str, body: schemas.PartnerReachCreate, session: SessionDep, key: ReachWriter
) -> schemas.PartnerReachRead:
    """Report what one alert message reached in your app. Idempotent: your latest report for
    a message replaces your previous one. The message id is the one webhooks, feeds and the
    stream carry (`reunite:` prefix allowed)."""

    def store() -> schemas.PartnerReachRead:
        try:
            message = reach.message_of(session, message_id)
        except reach.UnknownMessage:
            raise HTTPException(404, "message_id: no message with this id") from None
        row = reach.record_partner_reach(session, key.partner_id, message, body)
        session.commit()
        return schemas.PartnerReachRead.model_validate(row)

    return await run_in_threadpool(store)
