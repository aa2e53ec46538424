"""Case schemas: validation here makes a bad request a 422 that names the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from alerts.cases.lifecycle import CaseState
from ops.text import clean_line, clean_text

# The service re-checks the age limit against the configured maximum; this bound stops absurd
# input (a year typed as 1026) even when a schema is used on its own.
HARD_MAX_AGE = timedelta(days=3650)
CLOCK_SKEW = timedelta(minutes=5)

# Single-line fields (names, addresses) and multi-line ones (descriptions): every free text
# is NFC and refuses control characters and bidi overrides (ops.text), naming the field.
Line = AfterValidator(clean_line)
Lines = AfterValidator(clean_text)
Text100 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Line
]
Text300 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300), Line]
Text1000 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), Lines]
Text2000 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), Lines]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), Line]
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 \-]{2,24}$", max_length=32),
]


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class AlertLanguage(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("must not be in the future")
    if value < datetime.now(UTC) - HARD_MAX_AGE:
        raise ValueError("is implausibly old")
    return value.astimezone(UTC)


PastTime = Annotated[AwareDatetime, AfterValidator(_not_future)]


class Child(Strict):
    name: Text100
    sex: Sex
    date_of_birth: date | None = None
    age_years: int | None = Field(default=None, ge=0, le=17)
    height_cm: int | None = Field(default=None, ge=30, le=220)
    weight_kg: float | None = Field(default=None, ge=1, le=200)
    appearance: Text1000 = ""
    clothing: Text1000 = ""
    distinguishing_marks: Text1000 = ""
    languages_spoken: list[Annotated[str, StringConstraints(max_length=35), Line]] = Field(
        default_factory=list, max_length=10
    )

    @field_validator("date_of_birth")
    @classmethod
    def _dob_is_a_child(cls, value: date | None) -> date | None:
        if value is None:
            return value
        today = datetime.now(UTC).date()
        if value > today:
            raise ValueError("must not be in the future")
        if (today - value).days > 18 * 366:
            raise ValueError("makes the person an adult; Reunite alerts are for children")
        return value

    @model_validator(mode="after")
    def _age_known(self) -> Child:
        if self.date_of_birth is None and self.age_years is None:
            raise ValueError("give date_of_birth or age_years")
        return self


class Photo(Strict):
    # A storage reference, never a URL: photos are served through expiring signed links.
    ref: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{8,64}$")]
    content_type: Annotated[str, StringConstraints(pattern=r"^image/(jpeg|png|webp)$")]


class PhotoAdded(BaseModel):
    """A photo stored for a case: list `ref` in the case's `photos` (a draft already does)."""

    ref: str
    content_type: str
    listed: bool = Field(description="Whether the case lists the photo now (drafts only)")


class LastSeen(Strict):
    at: PastTime
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    address: Text300 = Field(min_length=1)
    circumstances: Text2000 = ""


class Suspect(Strict):
    name: Short = ""
    description: Text1000 = ""


class Vehicle(Strict):
    description: Text300 = ""
    plate: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20), Line] = ""
    colour: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40), Line] = ""


def _unique_languages(value: list[AlertLanguage]) -> list[AlertLanguage]:
    if len(set(value)) != len(value):
        raise ValueError("languages must not repeat")
    return value


class CaseCreate(Strict):
    child: Child
    photos: list[Photo] = Field(default_factory=list, max_length=10)
    last_seen: LastSeen
    suspect: Suspect | None = None
    vehicle: Vehicle | None = None
    tip_line: Phone
    alert_languages: Annotated[
        list[AlertLanguage], Field(min_length=1), AfterValidator(_unique_languages)
    ] = Field(default_factory=lambda: [AlertLanguage.ZH_CN, AlertLanguage.EN])


class CaseUpdate(Strict):
    """Every field optional; only given fields change (drafts only)."""

    child: Child | None = None
    photos: list[Photo] | None = Field(default=None, max_length=10)
    last_seen: LastSeen | None = None
    suspect: Suspect | None = None
    vehicle: Vehicle | None = None
    tip_line: Phone | None = None
    alert_languages: (
        Annotated[list[AlertLanguage], Field(min_length=1), AfterValidator(_unique_languages)]
        | None
    ) = None


class Reason(Strict):
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), Lines
    ]


class OptionalReason(Strict):
    reason: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), Lines] | None
    ) = None


class CaseRead(BaseModel):
    id: str
    state: CaseState
    agency_id: int
    created_by_id: int
    submitted_by_id: int | None
    approved_by_id: int | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None
    closed_at: datetime | None
    tip_line: str
    alert_languages: list[AlertLanguage]
    rejection_reason: str | None
    close_reason: str | None
    version: int
    # None once the child's personal data has been erased after closure.
    child: Child | None
    photos: list[Photo]
    last_seen: LastSeen | None
    suspect: Suspect | None
    vehicle: Vehicle | None


class CasePage(BaseModel):
    items: list[CaseRead]
    total: int
    limit: int
    offset: int


class ChangeRead(BaseModel):
    """A material change to a live alert and its decision (two-person rule)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    case_id: str
    kind: str = Field(description="details (public text) or sighting (moves the centre)")
    state: str = Field(description="pending, approved or rejected")
    payload: dict[str, Any] | None = Field(description="the proposed fields or sighting")
    submitted_by_id: int
    submitted_at: datetime
    decided_by_id: int | None
    decided_at: datetime | None
