"""Operators tune the radius rules and preview an alert's reach."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status

from alerts.deps import CurrentUser, OperatorUser, SessionDep, SettingsDep, user_errors
from geo import rules
from geo.devices import service as devices
from geo.rulesets import service
from geo.rulesets.schemas import PreviewRead, PreviewRequest, RuleSetCreate, RuleSetRead

router = APIRouter(prefix="/api/v1/rules", tags=["radius rules"])
OPERATORS = "Only operators and admins"


@router.get("", response_model=RuleSetRead, responses=user_errors())
def current_rules(session: SessionDep, _user: CurrentUser) -> RuleSetRead:
    """The rule set in force."""
    return service.read(session)


@router.get("/versions", response_model=list[RuleSetRead], responses=user_errors({403: OPERATORS}))
def rule_history(session: SessionDep, _user: OperatorUser) -> list[RuleSetRead]:
    """Every version, newest first."""
    return service.history(session)


@router.post(
    "",
    response_model=RuleSetRead,
    status_code=status.HTTP_201_CREATED,
    responses=user_errors({403: OPERATORS + ", with a `full` token"}, 413),
)
def create_rules(
    body: RuleSetCreate, session: SessionDep, user: OperatorUser, settings: SettingsDep
) -> RuleSetRead:
    """Store a new version; it applies to waves planned from now on."""
    try:
        return service.create_version(
            session, body, actor=f"user:{user.id}", ceiling_km=settings.radius_ceiling_km
        )
    except rules.RuleError as exc:
        raise HTTPException(
            422, [{"field": exc.field, "message": str(exc), "type": "value_error"}]
        ) from None


@router.post(
    "/preview",
    response_model=PreviewRead,
    responses=user_errors(
        {403: "A `read` token may not POST (though the preview changes nothing)"}, 413
    ),
)
def preview(body: PreviewRequest, session: SessionDep, _user: CurrentUser) -> PreviewRead:
    """The waves a case at this place and time would get, with devices reached per wave."""
    approved_at = body.approved_at or datetime.now(UTC)
    if approved_at < body.last_seen_at:
        raise HTTPException(
            422, [{"field": "approved_at", "message": "must not be before last_seen_at"}]
        )
    return service.preview(
        session,
        devices.location_index(),
        lat=body.lat,
        lon=body.lon,
        last_seen_at=body.last_seen_at,
        approved_at=approved_at,
    )
