"""Partner schemas: accounts, keys, profiles and webhook subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    field_validator,
)

from alerts.partners.service import Format, PartnerKind, Scope
from channels.messages import AlertEvent
from ops.text import clean_line

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(clean_line),
]
LatLon = Annotated[list[float], Field(min_length=2, max_length=2)]
EVENTS = tuple(str(e) for e in AlertEvent)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_ring(ring: list[list[float]]) -> list[list[float]]:
    if len(ring) < 4 or ring[0] != ring[-1]:
        raise ValueError(
            "a polygon needs at least 4 [lat, lon] points, the first equal to the last"
        )
    for lat, lon in ring:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError("coordinates out of range")
    return ring


class PartnerProfile(Strict):
    # None: the whole country. Otherwise polygons of [lat, lon] points, each ring closed.
    area: list[Annotated[list[LatLon], Field(min_length=4, max_length=2000)]] | None = Field(
        default=None, max_length=50
    )
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{2}(-[A-Za-z]{2})?$")]] = (
        Field(default_factory=list, max_length=10)
    )
    formats: list[Format] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=600, ge=1, le=100_000)
    # Receive drills and system tests too (always marked, status "exercise" or "test").
    drills: bool = False

    @field_validator("area")
    @classmethod
    def _rings(cls, value: list[list[list[float]]] | None) -> list[list[list[float]]] | None:
        return None if value is None else [_check_ring(r) for r in value]


class PartnerCreate(PartnerProfile):
    name: Name
    kind: PartnerKind
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.FEEDS_READ], min_length=1)
    key_ttl_days: int | None = Field(default=365, ge=1, le=3650)


class PartnerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: PartnerKind
    active: bool
    created_at: datetime
    area: list[list[list[float]]] | None
    languages: list[str]
    formats: list[str]
    rate_limit_per_minute: int
    drills: bool


class PartnerActive(Strict):
    active: bool


class KeyCreate(Strict):
    scopes: list[Scope] = Field(min_length=1)
    ttl_days: int | None = Field(default=365, ge=1, le=3650)


class SecretRotate(Strict):
    # The old secret keeps co-signing this long, so receivers can switch without a gap.
    overlap_hours: float = Field(default=24, ge=0, le=24 * 30)


class KeyRotate(Strict):
    overlap_hours: float = Field(default=24, ge=0, le=24 * 30)


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyIssued(BaseModel):
    """The full key appears here once and is never shown again."""

    key: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None


class PartnerCreated(BaseModel):
    partner: PartnerRead
    key: KeyIssued


class EndpointCreate(Strict):
    url: HttpUrl
    events: list[Annotated[str, StringConstraints(pattern=r"^alert\.[a-z]+$")]] = Field(
        default_factory=list, max_length=len(EVENTS)
    )
    language: Annotated[str, StringConstraints(max_length=16)] | None = None
    # Seconds our request may take; None: the default (3 s).
    timeout_s: float | None = Field(default=None, ge=0.5, le=10)

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown events {unknown}; known: {list(EVENTS)}")
        return value


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    language: str | None
    timeout_s: float | None
    active: bool
    created_at: datetime


class EndpointCreated(BaseModel):
    """The signing secret appears here once and is never shown again."""

    endpoint: EndpointRead
    secret: str


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: str
    endpoint_id: int
    attempt: int
    outcome: str
    reason: str
    status: int | None
    duration_ms: int
    at: datetime


class RedeliveryRequest(Strict):
    message_id: Annotated[str, StringConstraints(max_length=120)]
    endpoint_id: int


class RedeliveryQueued(BaseModel):
    message_id: str
    endpoint_id: int
    via: str  # "dead_letter_replay" or "redelivery"
