"""Token issue, the current user, and agency settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request, Response, status

from alerts.console import security
from alerts.console.web import client_address
from alerts.deps import AdminUser, CurrentUser, SessionDep, SettingsDep, user_errors
from alerts.users import service as users
from alerts.users.models import Agency, ApiToken, User
from alerts.users.schemas import (
    AgencyRead,
    AgencySelfApprovalUpdate,
    ApiTokenRead,
    EnrolmentCodeRead,
    PasswordChange,
    TokenRead,
    UserRead,
)
from ops import openapi
from ops.platform.audit import service as audit
from ops.platform.redis_client import get_redis

router = APIRouter(prefix="/api/v1", tags=["auth"])
ADMINS_WRITE = "Admins only, with a `full` token"


@router.post(
    "/auth/token",
    response_model=TokenRead,
    responses=openapi.errors(
        {
            401: "Wrong username or password, or a missing or wrong TOTP code (the message "
            "starts with `totp:`)",
            403: "The account must enrol a second factor (TOTP) in the console first",
            413: "The form is larger than 16 KiB",
            429: "Locked out after repeated failures for this username; `Retry-After` says "
            "for how many seconds",
        }
    ),
)
def issue_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[
        str, Form(max_length=64, description="Your sign-in name", examples=["sup1"])
    ],
    password: Annotated[
        str,
        Form(
            max_length=256, description="Your password", examples=["wild-orchid-ferry-lantern-92"]
        ),
    ],
    totp: Annotated[
        str | None,
        Form(
            max_length=12,
            description="The current 6-digit code of your authenticator app; required for "
            "supervisors, operators, admins and anyone enrolled",
            examples=["492038"],
        ),
    ] = None,
) -> TokenRead:
    """Exchange a username, password and (supervisors, operators, admins, and anyone enrolled)
    a TOTP code for a bearer token. Failures count towards the console's lockout: a locked
    account gets no token either."""
    throttle = security.Throttle(get_redis(), settings)
    address = client_address(request)
    lock = throttle.locked(username, address)
    if lock is not None:
        raise _locked(lock.seconds)

    def refuse(code: int, detail: str) -> HTTPException:
        new_lock = throttle.failed(username, address)
        session.commit()  # the audited failure stands
        return _locked(new_lock.seconds) if new_lock is not None else HTTPException(code, detail)

    throttle.pause(address)  # a busy address is slowed, never refused
    user = users.authenticate(session, username, password)
    if user is None:
        raise refuse(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    row = security.totp_row(session, user, lock=True)
    enrolled = row is not None and row.confirmed_at is not None
    if users.needs_second_factor(session, user) or enrolled:
        if not enrolled:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "enrol a second factor (TOTP) in the console before asking for API tokens",
            )
        if not totp or not security.check_code(row, totp):
            audit.record(
                session,
                actor=f"user:{user.id}",
                action="auth.mfa_failed",
                subject=f"user:{user.id}",
            )
            raise refuse(status.HTTP_401_UNAUTHORIZED, "totp: a valid TOTP code is required")
    throttle.succeeded(username)
    token, row = users.issue_token(session, user, timedelta(hours=settings.token_ttl_hours))
    return TokenRead(access_token=token, expires_at=row.expires_at, id=row.id)


def _locked(seconds: int) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"too many failed attempts; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


@router.get(
    "/auth/tokens",
    response_model=list[ApiTokenRead],
    responses=user_errors(),
)
def list_tokens(session: SessionDep, user: CurrentUser) -> list[ApiTokenRead]:
    """Your API tokens, newest first: live ones and those that expired or were revoked in the
    last 30 days, with scope and origin (never the secret or its hash)."""
    return [_token_read(row) for row in users.tokens_of(session, user)]


@router.delete(
    "/auth/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=user_errors(
        {
            403: "A `read` token may not revoke",
            404: "You have no token with this id (another user's token is 404 too)",
        }
    ),
)
def revoke_token(
    token_id: Annotated[str, Path(max_length=16)], session: SessionDep, user: CurrentUser
) -> Response:
    """Revoke one of your API tokens at once (audited; revoking it again changes nothing).
    Another user's token is 404, as an unknown one is."""
    try:
        users.revoke_token(session, user, token_id)
    except users.TokenNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"token {token_id} not found") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _token_read(row: ApiToken) -> ApiTokenRead:
    return ApiTokenRead(
        id=row.id,
        name=row.name,
        scope=row.scope,
        state=users.token_state(row),
        created_via=row.created_via,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


@router.get("/me", response_model=UserRead, responses=user_errors())
def me(user: CurrentUser) -> UserRead:
    """The user the token belongs to."""
    return UserRead.model_validate(user)


@router.get(
    "/agencies",
    response_model=list[AgencyRead],
    tags=["admin"],
    responses=user_errors({403: "Admins only"}),
)
def list_agencies(session: SessionDep, _admin: AdminUser) -> list[AgencyRead]:
    """All agencies (admins only)."""
    from sqlalchemy import select

    return [
        AgencyRead.model_validate(a) for a in session.scalars(select(Agency).order_by(Agency.id))
    ]


@router.put(
    "/agencies/{agency_id}/self-approval",
    response_model=AgencyRead,
    tags=["admin"],
    responses=user_errors({403: ADMINS_WRITE, 404: "No agency with this id"}, 413),
)
def set_self_approval(
    agency_id: int, body: AgencySelfApprovalUpdate, session: SessionDep, admin: AdminUser
) -> AgencyRead:
    """Let ranks from a level up approve their own cases, or switch it off (audited)."""
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"agency {agency_id} not found")
    users.set_self_approval(
        session, agency, body.self_approval_min_rank, actor=f"user:{admin.id}", reason=body.reason
    )
    return AgencyRead.model_validate(agency)


@router.post(
    "/users/{user_id}/enrolment-code",
    response_model=EnrolmentCodeRead,
    status_code=status.HTTP_201_CREATED,
    tags=["admin"],
    responses=user_errors({403: ADMINS_WRITE, 404: "No user with this id"}),
)
def issue_enrolment_code(user_id: int, session: SessionDep, admin: AdminUser) -> EnrolmentCodeRead:
    """A one-time code for the user's first TOTP enrolment (audited; replaces an earlier one).
    Hand it over in person or by a second channel: the password alone never enrols."""
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")
    code = users.issue_enrolment_code(session, user, actor=f"user:{admin.id}")
    return EnrolmentCodeRead(
        username=user.username, code=code, expires_at=user.enrolment_code_expires_at
    )


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=user_errors(
        {
            403: "A `read` token may not change the password",
            413: "The body is larger than 16 KiB",
        }
    ),
)
def change_password(body: PasswordChange, session: SessionDep, user: CurrentUser) -> Response:
    """Change your password; every API token you hold is revoked, this one too (audited). A
    wrong current password is 422 naming `current_password`; a weak, common or leaked new
    one is 422 naming `new_password`."""
    try:
        users.change_password(session, user, body.current_password, body.new_password)
    except users.UserError as exc:
        field, _, message = str(exc).partition(": ")
        field = "new_password" if field == "password" else field
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, [{"field": field, "message": message}]
        ) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
