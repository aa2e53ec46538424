"""Token issue, the current user, and agency settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, status

from alerts.deps import AdminUser, CurrentUser, SessionDep, SettingsDep
from alerts.users import service as users
from alerts.users.models import Agency
from alerts.users.schemas import AgencyRead, AgencySelfApprovalUpdate, TokenRead, UserRead

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/token", response_model=TokenRead)
def issue_token(
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> TokenRead:
    """Exchange a username and password for a bearer token (OAuth2 password form)."""
    user = users.authenticate(session, username, password)
    if user is None:
        # Commit the audited failure before answering.
        session.commit()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token, expires_at = users.issue_token(session, user, timedelta(hours=settings.token_ttl_hours))
    return TokenRead(access_token=token, expires_at=expires_at)


@router.get("/me", response_model=UserRead)
def me(user: CurrentUser) -> UserRead:
    """The user the token belongs to."""
    return UserRead.model_validate(user)


@router.get("/agencies", response_model=list[AgencyRead], tags=["admin"])
def list_agencies(session: SessionDep, _admin: AdminUser) -> list[AgencyRead]:
    """All agencies (admins only)."""
    from sqlalchemy import select

    return [
        AgencyRead.model_validate(a) for a in session.scalars(select(Agency).order_by(Agency.id))
    ]


@router.put("/agencies/{agency_id}/self-approval", response_model=AgencyRead, tags=["admin"])
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
