"""Pydantic schemas for tokens, users and agencies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from alerts.users.roles import Rank, Role, TokenOrigin, TokenScope, TokenState
from ops.text import clean_line, clean_text

TOKEN_ID = "The token's public id (12 hex digits): listed and revoked by it"
ROLE = (
    "officer (creates and submits cases), supervisor (approves), operator (radius rules, "
    "deliveries) or admin (users, agencies, partners)"
)
RANK = (
    "Police rank, in ascending seniority: constable, sergeant, inspector, superintendent, "
    "commissioner"
)
USER_ID = "The user's id"
AGENCY_ID = "The agency's id"


class TokenRead(BaseModel):
    """A new API token of scope `full`: the secret is in this response only."""

    access_token: str = Field(
        description="The bearer token, `rut_` and 43 URL-safe characters; send it as "
        "`Authorization: Bearer ...`. Only its hash is stored",
        examples=["rut_4uDc3qYMW7NgJ6xL-H21W9zMwS2bklXtC4lS4qIIFcA"],
    )
    token_type: str = Field(default="bearer", description="Always `bearer`", examples=["bearer"])
    expires_at: datetime = Field(
        description="When it stops working (UTC): REUNITE_TOKEN_TTL_HOURS (12 h) after issue",
        examples=["2025-06-01T13:30:00Z"],
    )
    # The public id it is listed and revoked by (GET and DELETE /api/v1/auth/tokens).
    id: str = Field(
        description=TOKEN_ID + " (GET and DELETE /api/v1/auth/tokens)",
        examples=["2ad90c14d800"],
    )


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

    id: str = Field(description=TOKEN_ID, examples=["2ad90c14d800"])
    name: str = Field(
        description="The name given in the console; `api` for tokens from the token endpoint",
        examples=["nightly export"],
    )
    scope: TokenScope = Field(
        description="full: whatever the user's role may; read: only GET and HEAD",
        examples=["read"],
    )
    state: TokenState = Field(
        description="active, expired or revoked (ended tokens are listed for 30 days)",
        examples=["active"],
    )
    created_via: TokenOrigin = Field(
        description="password+totp: from POST /api/v1/auth/token or the CLI; console: made "
        "on the console's API tokens page",
        examples=["console"],
    )
    created_at: datetime = Field(
        description="When it was made (UTC)", examples=["2025-06-01T01:30:00Z"]
    )
    expires_at: datetime = Field(
        description="When it stops working (UTC)", examples=["2025-08-30T01:30:00Z"]
    )
    revoked_at: datetime | None = Field(
        description="When it was revoked (UTC); null if never", examples=[None]
    )


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description=USER_ID, examples=[7])
    username: str = Field(
        description="Sign-in name (1-64 letters, digits, . or _)", examples=["officer1"]
    )
    role: Role = Field(description=ROLE, examples=["officer"])
    rank: Rank = Field(description=RANK, examples=["sergeant"])
    agency_id: int = Field(
        description="The user's agency: they see its cases and those of the agencies below it",
        examples=[3],
    )


class AgencyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description=AGENCY_ID, examples=[3])
    name: str = Field(description="The agency's unique name", examples=["Guangzhou PSB"])
    parent_id: int | None = Field(
        description="The agency above it (its supervisors may approve this one's cases); "
        "null at the top",
        examples=[1],
    )
    self_approval_min_rank: Rank | None = Field(
        description="From this rank up, a supervisor may approve a case they submitted "
        "themselves (audited); null: never, a second supervisor always approves",
        examples=[None],
    )


class AgencySelfApprovalUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    self_approval_min_rank: Rank | None = Field(
        description="The lowest rank that may approve its own cases; null switches "
        "self-approval off",
        examples=["superintendent"],
    )
    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
        AfterValidator(clean_text),
    ] = Field(
        description="Why, for the audit log (1-500 characters)",
        examples=["Night shift has one supervisor on duty"],
    )


class EnrolmentCodeRead(BaseModel):
    """A one-time code for a user's first TOTP enrolment: shown here once."""

    username: str = Field(description="Whose code it is", examples=["sup1"])
    code: str = Field(
        description="Three groups of six hex digits; the user types it in the console when "
        "enrolling TOTP (one use; a new code replaces it)",
        examples=["DA25F7-3A0C3F-467EB0"],
    )
    expires_at: datetime = Field(
        description="When it stops working (UTC): 24 h after issue",
        examples=["2025-06-02T01:30:00Z"],
    )


class PasswordChange(BaseModel):
    """Your current password and the new one (checked for strength and leaked lists)."""

    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, StringConstraints(max_length=256)] = Field(
        description="The password now in use (a wrong one is 422 naming this field)",
        examples=["the old passphrase"],
    )
    new_password: Annotated[str, StringConstraints(max_length=256)] = Field(
        description="At least 12 characters and hard to guess (zxcvbn score 3 or more, not "
        "on a common or leaked list)",
        examples=["wild-orchid-ferry-lantern-92"],
    )
