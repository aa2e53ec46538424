"""Pydantic schemas for tokens, users and agencies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from alerts.users.roles import Rank, Role, TokenOrigin, TokenScope, TokenState
from ops.text import clean_line, clean_text


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    # The public id it is listed and revoked by (GET and DELETE /api/v1/auth/tokens).
    id: str


class ApiTokenCreate(BaseModel):
    """A named token made in the console: its scope and lifetime in days (the upper bound is
    the api_token_max_days setting, checked where it is known)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
        AfterValidator(clean_line),
    ]
    scope: TokenScope
    expires_in_days: Annotated[int, Field(ge=1)]


class ApiTokenRead(BaseModel):
    """One of your API tokens as listed: never the secret or its hash."""

    id: str
    name: str
    scope: TokenScope
    state: TokenState
    created_via: TokenOrigin
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    rank: Rank
    agency_id: int


class AgencyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    parent_id: int | None
    self_approval_min_rank: Rank | None


class AgencySelfApprovalUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    self_approval_min_rank: Rank | None
    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
        AfterValidator(clean_text),
    ]


class EnrolmentCodeRead(BaseModel):
    """A one-time code for a user's first TOTP enrolment: shown here once."""

    username: str
    code: str
    expires_at: datetime


class PasswordChange(BaseModel):
    """Your current password and the new one (checked for strength and leaked lists)."""

    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, StringConstraints(max_length=256)]
    new_password: Annotated[str, StringConstraints(max_length=256)]
