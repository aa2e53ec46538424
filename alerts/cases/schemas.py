"""Case schemas: validation here makes a bad request a 422 that names the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

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
from alerts.cases.outcome import Outcome
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


# Shared wording for the OpenAPI document (every field says what it means and shows a value).
CASE_ID = "The case's id (a UUID)"
POLICE_ONLY = "; for the police record, never in public alert texts"
LAST_SEEN_AT = (
    "When the child was last seen: ISO 8601 with a UTC offset, not in the future and at most "
    "REUNITE_LAST_SEEN_MAX_AGE_DAYS (30) ago; the radius schedule counts from it"
)
LAT = "Latitude in degrees (WGS 84), -90 to 90"
LON = "Longitude in degrees (WGS 84), -180 to 180"
TIP_LINE = (
    "The phone number the public calls with information, as printed in every alert: digits, "
    "spaces and hyphens, an optional leading +"
)
ALERT_LANGUAGES = (
    "Languages the alert texts are written in (zh-CN, en), no repeats; a device or endpoint "
    "whose language is not among them gets the first"
)
PHOTOS = (
    "Up to 10 photos uploaded through the console, by reference; alerts link the first one "
    "stored, behind an expiring signed URL"
)
WHEN = "(UTC); null until it happens"


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
    """The missing child. Public texts carry the name, age, sex, height and clothing."""

    name: Text100 = Field(
        description="Full name (1-100 characters); English texts carry a Chinese name in "
        "Hanyu Pinyin",
        examples=["林小雨"],
    )
    sex: Sex = Field(description="female, male or unknown", examples=["female"])
    date_of_birth: date | None = Field(
        default=None,
        description="ISO 8601 date, not in the future and under 18 years ago; give it or "
        "age_years (or both)",
        examples=["2017-03-02"],
    )
    age_years: int | None = Field(
        default=None,
        ge=0,
        le=17,
        description="Age in whole years, 0-17; alerts state it when given, otherwise the "
        "age date_of_birth gives on the last-seen day",
        examples=[8],
    )
    height_cm: int | None = Field(
        default=None, ge=30, le=220, description="About how tall, in cm (30-220)", examples=[128]
    )
    weight_kg: float | None = Field(
        default=None,
        ge=1,
        le=200,
        description="About how heavy, in kg (1-200)" + POLICE_ONLY,
        examples=[26.5],
    )
    appearance: Text1000 = Field(
        default="",
        description="Build, hair, face (up to 1000 characters)" + POLICE_ONLY,
        examples=["Slim, shoulder-length black hair, round face"],
    )
    clothing: Text1000 = Field(
        default="",
        description="What the child wore when last seen (up to 1000 characters); in public "
        "texts, the first part an SMS drops when it must be cut",
        examples=["Red raincoat, blue jeans, white trainers"],
    )
    distinguishing_marks: Text1000 = Field(
        default="",
        description="Scars, birthmarks, glasses (up to 1000 characters)" + POLICE_ONLY,
        examples=["Small scar above the left eyebrow"],
    )
    languages_spoken: list[Annotated[str, StringConstraints(max_length=35), Line]] = Field(
        default_factory=list,
        max_length=10,
        description="Languages the child speaks, up to 10 (each up to 35 characters)" + POLICE_ONLY,
        examples=[["Mandarin", "Cantonese"]],
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
    """A stored photo of the child (uploaded through the console, metadata stripped)."""

    # A storage reference, never a URL: photos are served through expiring signed links.
    ref: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{8,64}$")] = Field(
        description="The photo store's reference (8-64 of A-Z a-z 0-9 _ -), never a URL: "
        "photos are served through expiring signed links",
        examples=["ph_9saXvFMVmFHFTmWwYPVNQSJJpjzcTRp7"],
    )
    content_type: Annotated[str, StringConstraints(pattern=r"^image/(jpeg|png|webp)$")] = Field(
        description="image/jpeg, image/png or image/webp", examples=["image/jpeg"]
    )


class PhotoAdded(BaseModel):
    """A photo stored for a case: list `ref` in the case's `photos` (a draft already does)."""

    ref: str = Field(
        description="The photo's opaque reference: list it in the case's `photos`",
        examples=["ph_Qm9vX2V4YW1wbGVfcmVmXzEyMzQ"],
    )
    content_type: str = Field(
        description="The stored (re-encoded) image's type", examples=["image/jpeg"]
    )
    listed: bool = Field(
        description="Whether the case lists the photo now (a draft does; a live case lists "
        "it through an update a second supervisor approves)",
        examples=[True],
    )


class LastSeen(Strict):
    """Where and when the child was last seen: the centre and the clock of the alert."""

    at: PastTime = Field(description=LAST_SEEN_AT, examples=["2025-06-01T08:15:00+08:00"])
    lat: float = Field(
        ge=-90,
        le=90,
        allow_inf_nan=False,
        description=LAT + "; the centre of the alert area",
        examples=[23.1291],
    )
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description=LON, examples=[113.2644])
    address: Text300 = Field(
        min_length=1,
        description="The place in words, as public texts show it (1-300 characters)",
        examples=["Tianhe Park east gate, Tianhe District, Guangzhou"],
    )
    circumstances: Text2000 = Field(
        default="",
        description="How the child went missing (up to 2000 characters)" + POLICE_ONLY,
        examples=["Left the playground alone while her grandmother was paying at a kiosk"],
    )


class Suspect(Strict):
    """A person believed to be involved (for the police record, never in public texts)."""

    name: Short = Field(
        default="", description="Name, if known (up to 100 characters)", examples=["Unknown"]
    )
    description: Text1000 = Field(
        default="",
        description="What they look like (up to 1000 characters)",
        examples=["Man, about 40, grey jacket, carrying a black backpack"],
    )


class Vehicle(Strict):
    """A vehicle involved (for the police record, never in public texts)."""

    description: Text300 = Field(
        default="",
        description="Make, model, marks (up to 300 characters)",
        examples=["White minivan, dented rear door"],
    )
    plate: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20), Line] = Field(
        default="", description="Registration plate (up to 20 characters)", examples=["粤A·12345"]
    )
    colour: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40), Line] = Field(
        default="", description="Colour (up to 40 characters)", examples=["white"]
    )


def _unique_languages(value: list[AlertLanguage]) -> list[AlertLanguage]:
    if len(set(value)) != len(value):
        raise ValueError("languages must not repeat")
    return value


class CaseCreate(Strict):
    """A new case; it starts as a draft of the officer's agency."""

    child: Child = Field(description="The missing child")
    photos: list[Photo] = Field(default_factory=list, max_length=10, description=PHOTOS)
    last_seen: LastSeen = Field(description="Where and when the child was last seen")
    suspect: Suspect | None = Field(
        default=None, description="A person believed involved, if any" + POLICE_ONLY
    )
    vehicle: Vehicle | None = Field(
        default=None, description="A vehicle involved, if any" + POLICE_ONLY
    )
    tip_line: Phone = Field(description=TIP_LINE, examples=["+86 20 8311 0110"])
    alert_languages: Annotated[
        list[AlertLanguage], Field(min_length=1), AfterValidator(_unique_languages)
    ] = Field(
        default_factory=lambda: [AlertLanguage.ZH_CN, AlertLanguage.EN],
        description=ALERT_LANGUAGES + "; default zh-CN and en",
        examples=[["zh-CN", "en"]],
    )


class CaseUpdate(Strict):
    """Every field optional; only given fields change (drafts only)."""

    child: Child | None = Field(
        default=None, description="Replaces the child's details whole; null or omitted: unchanged"
    )
    photos: list[Photo] | None = Field(
        default=None,
        max_length=10,
        description=PHOTOS + "; replaces the list; null or omitted: unchanged",
    )
    last_seen: LastSeen | None = Field(
        default=None,
        description="Replaces where and when (drafts only: an active case takes a sighting); "
        "null or omitted: unchanged",
    )
    suspect: Suspect | None = Field(
        default=None, description="Replaces the suspect; null removes it; omitted: unchanged"
    )
    vehicle: Vehicle | None = Field(
        default=None, description="Replaces the vehicle; null removes it; omitted: unchanged"
    )
    tip_line: Phone | None = Field(
        default=None,
        description=TIP_LINE + "; null or omitted: unchanged",
        examples=["+86 20 8311 0110"],
    )
    alert_languages: (
        Annotated[list[AlertLanguage], Field(min_length=1), AfterValidator(_unique_languages)]
        | None
    ) = Field(
        default=None,
        description=ALERT_LANGUAGES + " (drafts only); null or omitted: unchanged",
        examples=[["zh-CN", "en"]],
    )


class Reason(Strict):
    """Why a case is rejected or cancelled (required; audited)."""

    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), Lines
    ] = Field(
        description="Why (1-1000 characters): kept in the audit log and shown to the officer "
        "as the rejection or close reason",
        examples=["Duplicate of a case already active for the same child"],
    )


class OptionalReason(Strict):
    """How a case ended (optional; audited)."""

    reason: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), Lines] | None
    ) = Field(
        default=None,
        description="How the child was found, up to 1000 characters (kept as the close "
        "reason); null or omitted: none",
        examples=["Found safe by a shopkeeper near the park"],
    )


FoundOutcome = Literal[
    Outcome.FOUND_SAFE,
    Outcome.RETURNED_HOME,
    Outcome.FOUND_WITH_RELATIVE,
    Outcome.RESCUED_FROM_ABDUCTION,
    Outcome.FOUND_DECEASED,
    Outcome.OTHER,
]
CancelOutcome = Literal[Outcome.CANCELLED_UNFOUNDED, Outcome.OTHER]
TIP_TICKED = (
    "True when a tip helped even though none was marked credible or promoted (those count "
    "by themselves); false or omitted: only the tips' states decide"
)


class CaseResolve(OptionalReason):
    """How a found child's case ends: the reason (optional) and the outcome."""

    outcome: FoundOutcome = Field(
        default=Outcome.FOUND_SAFE,
        description="How the child was found: found_safe, returned_home, found_with_relative, "
        "rescued_from_abduction, found_deceased or other; omitted: found_safe (for clients "
        "written before outcomes were recorded). Any other value is refused with 422",
        examples=["found_with_relative"],
    )
    tip_contributed: bool = Field(default=False, description=TIP_TICKED, examples=[False])


class CaseCancel(Reason):
    """Why a case is withdrawn (required) and its outcome."""

    outcome: CancelOutcome = Field(
        default=Outcome.OTHER,
        description="cancelled_unfounded (the report was false or mistaken) or other "
        "(a duplicate, a mistake in intake); omitted: other. Any other value is refused with 422",
        examples=["cancelled_unfounded"],
    )
    tip_contributed: bool = Field(default=False, description=TIP_TICKED, examples=[False])


class CaseRead(BaseModel):
    """A case as its agency sees it; personal fields are null once erased after closure."""

    id: str = Field(description=CASE_ID, examples=["3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11"])
    state: CaseState = Field(
        description="draft -> submitted -> active -> resolved, cancelled or expired; a "
        "rejection sends a submitted case back to draft",
        examples=["active"],
    )
    agency_id: int = Field(description="The agency the case belongs to", examples=[3])
    created_by_id: int = Field(description="The user who created it", examples=[7])
    submitted_by_id: int | None = Field(
        description="The user who last submitted it; null before", examples=[7]
    )
    approved_by_id: int | None = Field(
        description="The supervisor who approved it; null before", examples=[12]
    )
    created_at: datetime = Field(
        description="When it was created (UTC)", examples=["2025-06-01T00:40:00Z"]
    )
    updated_at: datetime = Field(
        description="Its last change of state or details (UTC)", examples=["2025-06-01T00:52:00Z"]
    )
    submitted_at: datetime | None = Field(
        description="When it was last submitted " + WHEN, examples=["2025-06-01T00:45:00Z"]
    )
    approved_at: datetime | None = Field(
        description="When it was approved and alerting began " + WHEN,
        examples=["2025-06-01T00:52:00Z"],
    )
    closed_at: datetime | None = Field(
        description="When it was resolved, cancelled or expired " + WHEN, examples=[None]
    )
    tip_line: str = Field(description=TIP_LINE, examples=["+86 20 8311 0110"])
    alert_languages: list[AlertLanguage] = Field(
        description=ALERT_LANGUAGES, examples=[["zh-CN", "en"]]
    )
    rejection_reason: str | None = Field(
        description="Why a supervisor sent it back to draft; cleared when it is submitted again",
        examples=[None],
    )
    close_reason: str | None = Field(
        description="The reason given when it was resolved or cancelled (`abandoned draft` "
        "for a draft left untouched)",
        examples=[None],
    )
    outcome: Outcome | None = Field(
        description="How it ended: found_safe, returned_home, found_with_relative, "
        "rescued_from_abduction, found_deceased, cancelled_unfounded, other, or unknown (an "
        "alert that expired by time); null while open. Kept after erasure",
        examples=[None],
    )
    recovery_seconds: int | None = Field(
        description="Seconds from the first last-seen time to resolving; null unless "
        "resolved. Kept after erasure",
        examples=[None],
    )
    tip_contributed: bool | None = Field(
        description="Whether a tip helped (a tip of the case marked credible or promoted, or "
        "the closing officer said so); null while open. Kept after erasure",
        examples=[None],
    )
    version: int = Field(
        description="Starts at 1 and grows with every change of state or details",
        examples=[3],
    )
    # None once the child's personal data has been erased after closure.
    child: Child | None = Field(description="The child; null once erased after closure")
    photos: list[Photo] = Field(description="The photos; empty once erased")
    last_seen: LastSeen | None = Field(
        description="Where and when the child was last seen (moved by sightings); null once erased"
    )
    suspect: Suspect | None = Field(description="A person believed involved, or null")
    vehicle: Vehicle | None = Field(description="A vehicle involved, or null")


class CasePage(BaseModel):
    """One page of cases, newest first."""

    items: list[CaseRead] = Field(description="The cases on this page")
    total: int = Field(description="How many cases match, on all pages", examples=[42])
    limit: int = Field(description="The page size asked for (1-200)", examples=[50])
    offset: int = Field(description="How many matching cases come before this page", examples=[0])


class ChangeRead(BaseModel):
    """A material change to a live alert and its decision (two-person rule)."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The change's id", examples=[5])
    case_id: str = Field(description=CASE_ID, examples=["3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11"])
    kind: str = Field(
        description="details (public text), sighting (moves the centre) or area (a geofence "
        "override that widens the area)",
        examples=["sighting"],
    )
    state: str = Field(description="pending, approved or rejected", examples=["pending"])
    payload: dict[str, Any] | None = Field(
        description="The proposed fields (a CaseUpdate), sighting (a SightingCreate) or "
        "override (a GeoOverride)",
        examples=[
            {
                "at": "2025-06-01T03:05:00Z",
                "lat": 23.55,
                "lon": 113.59,
                "address": None,
                "note": None,
            }
        ],
    )
    submitted_by_id: int = Field(description="The user who proposed it", examples=[7])
    submitted_at: datetime = Field(
        description="When it was proposed (UTC)", examples=["2025-06-01T03:10:00Z"]
    )
    decided_by_id: int | None = Field(
        description="The supervisor who approved or rejected it; null while pending",
        examples=[None],
    )
    decided_at: datetime | None = Field(
        description="When it was decided (UTC); null while pending", examples=[None]
    )
