"""Pydantic schemas for tokens, users and agencies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from alerts.users.roles import Rank, Role
from ops.text import clean_text


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


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
