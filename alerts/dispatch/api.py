"""A case's delivery side over HTTP: sightings, geofence overrides, waves and deliveries."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from alerts.cases import api as cases_api
from alerts.cases import models as case_models
from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import CaseChange
from alerts.cases.schemas import ChangeRead
from alerts.deps import CurrentUser, SessionDep, SupervisorUser, user_errors
from alerts.dispatch import flows
from alerts.dispatch.schemas import GeoOverride, SightingCreate, SightingRead, WaveRead
from alerts.users.roles import CASE_AUTHORS, Role
from channels import service as channels
from channels import sms_http
from channels.schemas import CaseDeliveries, SmsReportRecorded
from geo.waves import service as waves
from ops import openapi
from ops.platform.outbox import relay

router = APIRouter(prefix="/api/v1/cases/{case_id}", tags=["waves"])
deliveries_router = APIRouter(prefix="/api/v1/cases", tags=["deliveries"])
providers_router = APIRouter(prefix="/api/v1/providers", tags=["providers"])
STAFF = frozenset({Role.OPERATOR, Role.ADMIN})
SUPERVISORS_ONLY = "Only supervisors, with a `full` token"
DECISION_ERRORS = user_errors(
    {
        403: "Only a supervisor of the case's agency or a parent agency other than the one who "
        "proposed the change, with a `full` token",
        404: "No such case in the caller's agencies, or no such change of this case",
        409: "The change was already decided, or the case is no longer active",
    }
)


def _held(session, case, kind: cases.ChangeKind, body, user) -> JSONResponse:
    """A live change held for a second supervisor (two-person rule): 202 with the change."""
    change = cases.propose(session, case, kind, body.model_dump(mode="json"), user)
    session.commit()
    return cases_api.accepted(change)


@router.post(
    "/sightings",
    response_model=SightingRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        202: {
            "model": ChangeRead,
            "description": "The sighting moves the centre too far: a second supervisor decides",
        },
        **user_errors(
            {
                403: "Only officers and supervisors add sightings, with a `full` token",
                404: cases_api.NOT_FOUND,
                409: "The case is not active",
            },
            413,
        ),
    },
)
def add_sighting(
    case_id: str,
    body: SightingCreate,
    session: SessionDep,
    user: CurrentUser,
    background: BackgroundTasks,
) -> SightingRead | JSONResponse:
    """A new last-seen place and time: waves restart from there (alerted devices excluded).
    One that moves the centre beyond live_change_max_km (50 km) waits for a second person."""
    if Role(user.role) not in CASE_AUTHORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} cannot add sightings")
    case = cases.get(session, case_id, user)
    try:
        flows.check_sighting(case, body.at)
    except flows.SightingRefused as exc:
        raise _field_error(exc) from None
    if case.state == CaseState.ACTIVE and flows.moves_too_far(case, body.lat, body.lon):
        return _held(session, case, cases.ChangeKind.SIGHTING, body, user)
    try:
        sighting = flows.add_sighting(
            session,
            case_id,
            at=body.at,
            lat=body.lat,
            lon=body.lon,
            address=body.address,
            note=body.note,
            user_id=user.id,
        )
    except flows.WaveConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except flows.SightingRefused as exc:  # checked again under the case's row lock
        raise _field_error(exc) from None
    session.commit()
    background.add_task(relay.relay_now)
    return SightingRead(
        id=sighting.id,
        case_id=case_id,
        at=sighting.at,
        lat=sighting.lat,
        lon=sighting.lon,
        created_at=sighting.created_at,
    )


@router.put(
    "/geo-override",
    response_model=list[WaveRead],
    responses={
        202: {
            "model": ChangeRead,
            "description": "The override widens a live alert's area: a second supervisor decides",
        },
        **user_errors({403: SUPERVISORS_ONLY, 404: cases_api.NOT_FOUND}, 413),
    },
)
def set_override(
    case_id: str,
    body: GeoOverride,
    session: SessionDep,
    user: SupervisorUser,
    background: BackgroundTasks,
) -> list[WaveRead] | JSONResponse:
    """A supervisor narrows one case: smaller start radius, a cap, or a manual area. On an
    active case, an override that widens the area waits for a second supervisor (202)."""
    case = cases.get(session, case_id, user)
    if case.state == CaseState.ACTIVE:
        try:
            widens = flows.widens_area(
                session,
                case_id,
                start_radius_km=body.start_radius_km,
                cap_km=body.cap_km,
                vertices=body.vertices,
            )
        except ValueError as exc:  # shapely: an unusable polygon
            raise HTTPException(422, f"vertices: {exc}") from None
        if widens:
            return _held(session, case, cases.ChangeKind.AREA, body, user)
    try:
        flows.set_override(
            session,
            case_id,
            start_radius_km=body.start_radius_km,
            cap_km=body.cap_km,
            vertices=body.vertices,
            reason=body.reason,
            user_id=user.id,
        )
    except flows.OVERRIDE_ERRORS as exc:
        raise _field_error(exc) from None
    session.commit()
    background.add_task(relay.relay_now)
    return list_waves(case_id, session, user)


@router.get(
    "/waves", response_model=list[WaveRead], responses=user_errors({404: cases_api.NOT_FOUND})
)
def list_waves(case_id: str, session: SessionDep, user: CurrentUser) -> list[WaveRead]:
    """The case's waves across epochs, with devices targeted so far."""
    cases.get(session, case_id, user)
    rows = waves.waves_of(session, case_id)
    counts = waves.wave_stats([w.id for w in rows])
    return [
        WaveRead(
            id=w.id,
            epoch=w.epoch,
            index=w.index,
            starts_at=w.starts_at,
            radius_km=w.radius_km,
            center=(w.center_lat, w.center_lon),
            status=w.status,
            started_at=w.started_at,
            rule_version=w.rule_version,
            shards=w.shards,
            targeted=counts[w.id],
        )
        for w in rows
    ]


@deliveries_router.get(
    "/{case_id}/deliveries",
    response_model=CaseDeliveries,
    responses=user_errors(
        {404: "No such case (police users: none in their agency or the agencies below it)"}
    ),
)
def case_deliveries(case_id: str, session: SessionDep, user: CurrentUser) -> CaseDeliveries:
    """Delivery counts per message, channel and partner, and recent webhook attempts."""
    if Role(user.role) not in STAFF:
        cases.get(session, case_id, user)  # police: only cases of their agency (404 otherwise)
    elif session.get(case_models.Case, case_id) is None:
        raise cases.CaseNotFound(f"case {case_id} not found")
    return channels.case_deliveries(session, case_id)


@providers_router.post(
    "/sms/receipts",
    response_model=SmsReportRecorded,
    responses=openapi.errors(
        {401: "Not signed with the callback secret, or a replay"},
        {404: "No HTTP gateway callback secret is configured"},
        {413: "The report is larger than REUNITE_BODY_MAX_BYTES"},
        {422: "The report is not a delivery report this gateway sends"},
    ),
)
async def sms_gateway_report(request: Request) -> SmsReportRecorded:
    """An HTTP SMS gateway's delivery report, signed like a Standard Webhooks event with the
    configured callback secret; "delivered" counts once in the delivery ledger."""
    body = await request.body()
    try:
        receipt = await run_in_threadpool(
            channels.record_gateway_report, body, dict(request.headers)
        )
    except channels.ReportsOff:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "delivery reports are not taken") from None
    except sms_http.ReportUnsigned as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"report refused: {exc}") from None
    except sms_http.ReportInvalid as exc:
        raise HTTPException(422, str(exc)) from None
    return SmsReportRecorded(id=receipt.provider_id, delivered=receipt.delivered)


@router.get(
    "/changes",
    response_model=list[ChangeRead],
    responses=user_errors({404: cases_api.NOT_FOUND}),
)
def list_changes(case_id: str, session: SessionDep, user: CurrentUser) -> list[ChangeRead]:
    """Material changes to the live alert, pending and decided, newest first."""
    cases.get(session, case_id, user)
    rows = session.scalars(
        select(CaseChange).where(CaseChange.case_id == case_id).order_by(CaseChange.id.desc())
    )
    return [ChangeRead.model_validate(c) for c in rows]


@router.post("/changes/{change_id}/approve", response_model=ChangeRead, responses=DECISION_ERRORS)
def approve_change(
    case_id: str,
    change_id: int,
    session: SessionDep,
    user: SupervisorUser,
    background: BackgroundTasks,
) -> ChangeRead:
    """A second supervisor (not the one who proposed it) lets the change go out."""
    return _decide(case_id, change_id, session, user, background, approve=True)


@router.post("/changes/{change_id}/reject", response_model=ChangeRead, responses=DECISION_ERRORS)
def reject_change(
    case_id: str,
    change_id: int,
    session: SessionDep,
    user: SupervisorUser,
    background: BackgroundTasks,
) -> ChangeRead:
    """A second supervisor refuses the change; the public alert stays as it is."""
    return _decide(case_id, change_id, session, user, background, approve=False)


def _decide(case_id, change_id, session, user, background, *, approve: bool) -> ChangeRead:
    try:
        change = flows.decide_change(session, case_id, change_id, user, approve=approve)
    except flows.WaveConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except flows.SightingRefused as exc:  # a later sighting went out meanwhile
        raise _field_error(exc) from None
    session.commit()
    background.add_task(relay.relay_now)
    return ChangeRead.model_validate(change)


def _field_error(exc: Exception) -> HTTPException:
    """A 422 naming the field, as validation errors do."""
    field = getattr(exc, "field", "body")
    return HTTPException(422, [{"field": field, "message": str(exc), "type": "value_error"}])
