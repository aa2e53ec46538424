"""Thin routes for case intake and the lifecycle; the service decides."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from alerts.cases import service
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import CaseChange
from alerts.cases.outcome import Outcome
from alerts.cases.schemas import (
    CaseCancel,
    CaseCreate,
    CasePage,
    CaseRead,
    CaseResolve,
    CaseUpdate,
    ChangeRead,
    PhotoAdded,
    Reason,
)
from alerts.console import photos as console_photos
from alerts.deps import CurrentUser, SessionDep, SettingsDep, user_errors
from ops.platform.outbox import relay

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])
# What each route refuses (alerts/app.py maps the service's errors to these codes).
NOT_FOUND = "No such case in the caller's agency or the agencies below it"
AUTHORS_ONLY = "Only officers and supervisors may do this, with a `full` token"


@router.post(
    "",
    response_model=CaseRead,
    status_code=status.HTTP_201_CREATED,
    responses=user_errors({403: AUTHORS_ONLY}, 413),
)
def create_case(
    body: CaseCreate, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> CaseRead:
    """Create a draft case for the officer's agency."""
    return service.to_read(service.create(session, body, user, settings))


PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")


@router.post(
    "/{case_id}/photos",
    response_model=PhotoAdded,
    status_code=status.HTTP_201_CREATED,
    responses=user_errors(
        {403: AUTHORS_ONLY},
        {404: NOT_FOUND},
        {409: "The case is closed, or a draft already lists 10 photos"},
        {413: "The image is larger than REUNITE_PHOTO_MAX_BYTES (10 MB by default)"},
        {415: "The body is not declared as image/jpeg, image/png or image/webp"},
        {422: "`photo`: not a readable JPEG, PNG or WebP image, or too many pixels"},
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The image itself (JPEG, PNG or WebP), at most 10 MB.",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in PHOTO_TYPES},
        }
    },
)
async def add_photo(
    case_id: str, request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> PhotoAdded:
    """Upload a photo to a case, sanitised as in the console (decoded, re-encoded without EXIF
    or GPS, size and pixel limits). A draft lists it at once; for a live case, list its `ref`
    in an update (a second supervisor approves). A case may list only its own photos. The body
    is read only after the token is checked."""
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared not in PHOTO_TYPES:
        raise HTTPException(415, f"content-type must be one of {', '.join(PHOTO_TYPES)}")
    data = await request.body()

    def store_and_add() -> PhotoAdded:
        service.get(session, case_id, user)  # 404 before anything is stored
        try:
            stored = console_photos.store(session, data, user, settings)
        except console_photos.PhotoRejected as exc:
            raise HTTPException(422, [{"field": "photo", "message": str(exc)}]) from None
        listed = service.add_photo(session, case_id, stored.ref, user)
        return PhotoAdded(ref=stored.ref, content_type=stored.content_type, listed=listed)

    return await run_in_threadpool(store_and_add)


@router.get("", response_model=CasePage, responses=user_errors())
def list_cases(
    session: SessionDep,
    user: CurrentUser,
    state: CaseState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CasePage:
    """Cases of the user's agency and the agencies below it, newest first."""
    rows, total = service.list_cases(session, user, state=state, limit=limit, offset=offset)
    return CasePage(
        items=[service.to_read(c) for c in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{case_id}", response_model=CaseRead, responses=user_errors({404: NOT_FOUND}))
def read_case(case_id: str, session: SessionDep, user: CurrentUser) -> CaseRead:
    """One case."""
    return service.to_read(service.get(session, case_id, user))


@router.patch(
    "/{case_id}",
    response_model=CaseRead,
    responses={
        202: {
            "model": ChangeRead,
            "description": "An active case's change waits for a second supervisor",
        },
        **user_errors(
            {
                403: AUTHORS_ONLY,
                404: NOT_FOUND,
                409: "The case is neither a draft nor active, or an active case's `last_seen` "
                "or `alert_languages` was sent (a sighting changes those)",
            },
            413,
        ),
    },
)
def update_case(
    case_id: str,
    body: CaseUpdate,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> CaseRead | JSONResponse:
    """Edit a draft. A change to an active case's public text is held as a pending change
    (202) until a second supervisor approves it; then alerted devices and partners get it."""
    result = service.update(session, case_id, body, user, settings)
    if isinstance(result, CaseChange):
        session.commit()
        return accepted(result)
    return _commit_and_relay(session, background, case_id, user)


def accepted(change: CaseChange) -> JSONResponse:
    """202 with the pending change: it waits for a second supervisor."""
    body = ChangeRead.model_validate(change).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/{case_id}/submit",
    response_model=CaseRead,
    responses=user_errors(
        {403: AUTHORS_ONLY, 404: NOT_FOUND, 409: "The case is not a draft"},
    ),
)
def submit_case(case_id: str, session: SessionDep, user: CurrentUser) -> CaseRead:
    """Send a draft to a supervisor for approval."""
    service.submit(session, case_id, user)
    return service.to_read(service.get(session, case_id, user))


def _commit_and_relay(session, background: BackgroundTasks, case_id: str, user) -> CaseRead:
    # Commit first: the outbox row must be durable before anything is published.
    session.commit()
    background.add_task(relay.relay_now)
    return service.to_read(service.get(session, case_id, user))


@router.post(
    "/{case_id}/approve",
    response_model=CaseRead,
    responses=user_errors(
        {
            403: "Only a supervisor of the case's agency or a parent agency, other than the one "
            "who submitted it (unless the agency allows self-approval from the approver's "
            "rank), with a `full` token",
            404: NOT_FOUND,
            409: "The case is not submitted",
        }
    ),
)
def approve_case(
    case_id: str, session: SessionDep, user: CurrentUser, background: BackgroundTasks
) -> CaseRead:
    """A second supervisor approves: the case goes active and dispatch starts."""
    service.approve(session, case_id, user)
    return _commit_and_relay(session, background, case_id, user)


@router.post(
    "/{case_id}/reject",
    response_model=CaseRead,
    responses=user_errors(
        {
            403: "Only supervisors, with a `full` token",
            404: NOT_FOUND,
            409: "The case is not submitted",
        },
        413,
    ),
)
def reject_case(case_id: str, body: Reason, session: SessionDep, user: CurrentUser) -> CaseRead:
    """Send a submitted case back to draft with a reason."""
    service.reject(session, case_id, user, body.reason)
    return service.to_read(service.get(session, case_id, user))


@router.post(
    "/{case_id}/resolve",
    response_model=CaseRead,
    responses=user_errors(
        {
            403: AUTHORS_ONLY,
            404: NOT_FOUND,
            409: "The case is not active",
            422: "`outcome`: not one of the found outcomes",
        },
        413,
    ),
)
def resolve_case(
    case_id: str,
    session: SessionDep,
    user: CurrentUser,
    background: BackgroundTasks,
    body: CaseResolve | None = None,
) -> CaseRead:
    """The child is found: close the case on every channel, with its outcome (found_safe if
    the body or its outcome is left out)."""
    body = body or CaseResolve()
    service.resolve(
        session, case_id, user, body.reason, Outcome(body.outcome), body.tip_contributed
    )
    return _commit_and_relay(session, background, case_id, user)


@router.post(
    "/{case_id}/cancel",
    response_model=CaseRead,
    responses=user_errors(
        {
            403: AUTHORS_ONLY,
            404: NOT_FOUND,
            409: "The case is already closed",
            422: "`reason` missing, or `outcome` not cancelled_unfounded or other",
        },
        413,
    ),
)
def cancel_case(
    case_id: str,
    body: CaseCancel,
    session: SessionDep,
    user: CurrentUser,
    background: BackgroundTasks,
) -> CaseRead:
    """Withdraw a case with a reason and its outcome (other if left out)."""
    service.cancel(session, case_id, user, body.reason, Outcome(body.outcome), body.tip_contributed)
    return _commit_and_relay(session, background, case_id, user)
