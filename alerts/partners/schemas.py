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

# Shared wording for the OpenAPI document.
PARTNER_ID = "The partner's id"
AREA = (
    "Its area of interest: null for the whole country, else up to 50 polygons, each a closed "
    "ring of 4-2000 [lat, lon] points in degrees (WGS 84), the first equal to the last. It gets "
    "only alerts whose area intersects one"
)
RING = [[22.5, 112.8], [22.5, 114.0], [23.8, 114.0], [23.8, 112.8], [22.5, 112.8]]
LANGUAGES = (
    "Languages it wants in its feed documents (tags such as zh-CN or en, up to 10); empty, or "
    "none the alert has: every language"
)
FORMATS = "How it takes alerts: cap, atom, json, stream, webhook; empty: all"
RATE = "API requests a minute, over all its keys, before 429 (1-100,000)"
DRILLS = "Also receive drills and system tests (always marked: CAP status Exercise or Test)"
SCOPES = (
    "What the key opens: devices:write (device registry), feeds:read (CAP, Atom, JSON feed, "
    "stream), webhooks:manage (endpoints, deliveries), tips:write (send tips about live alerts), "
    "reach:write (report what an alert reached in your app)"
)
PREFIX = "The key's public prefix (12 hex digits), by which it is rotated or revoked"
KEY_EXPIRES = "When it stops working (UTC); null: never"
MESSAGE_ID = (
    "A message of a case: `<case-id>:<kind>:<wave>:<n>` (kind alert, update, resolved, "
    "cancelled or expired), as webhooks and the deliveries list carry it"
)
MESSAGE = "3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11:alert:0:1"


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
        default=None, max_length=50, description=AREA, examples=[[RING]]
    )
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{2}(-[A-Za-z]{2})?$")]] = (
        Field(
            default_factory=list, max_length=10, description=LANGUAGES, examples=[["zh-CN", "en"]]
        )
    )
    formats: list[Format] = Field(
        default_factory=list, description=FORMATS, examples=[["cap", "webhook"]]
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=1, le=100_000, description=RATE, examples=[600]
    )
    # Receive drills and system tests too (always marked, status "exercise" or "test").
    drills: bool = Field(default=False, description=DRILLS, examples=[False])

    @field_validator("area")
    @classmethod
    def _rings(cls, value: list[list[list[float]]] | None) -> list[list[list[float]]] | None:
        return None if value is None else [_check_ring(r) for r in value]


class PartnerCreate(PartnerProfile):
    """A new partner account, its profile and the scopes of its first API key."""

    name: Name = Field(description="Its unique name (1-200 characters)", examples=["MapsApp"])
    kind: PartnerKind = Field(
        description="app (a phone app), carrier (a mobile network) or media",
        examples=["app"],
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.FEEDS_READ],
        min_length=1,
        description=SCOPES + "; of the first key, default feeds:read",
        examples=[["devices:write", "feeds:read", "webhooks:manage"]],
    )
    key_ttl_days: int | None = Field(
        default=365,
        ge=1,
        le=3650,
        description="The first key's lifetime in days (1-3650); null: it never expires",
        examples=[365],
    )


class PartnerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description=PARTNER_ID, examples=[2])
    name: str = Field(description="Its unique name", examples=["MapsApp"])
    kind: PartnerKind = Field(description="app, carrier or media", examples=["app"])
    active: bool = Field(
        description="false: suspended (no feeds, stream, webhooks or API access)",
        examples=[True],
    )
    created_at: datetime = Field(
        description="When it was created (UTC)", examples=["2025-05-01T02:00:00Z"]
    )
    area: list[list[list[float]]] | None = Field(description=AREA, examples=[[RING]])
    languages: list[str] = Field(description=LANGUAGES, examples=[["zh-CN", "en"]])
    formats: list[str] = Field(description=FORMATS, examples=[["cap", "webhook"]])
    rate_limit_per_minute: int = Field(description=RATE, examples=[600])
    drills: bool = Field(description=DRILLS, examples=[False])


class PartnerActive(Strict):
    """Suspend or restore a partner."""

    active: bool = Field(
        description="false suspends it (its keys stop working; no feeds, stream or "
        "webhooks); true restores it",
        examples=[False],
    )


class KeyCreate(Strict):
    """A new API key for a partner."""

    scopes: list[Scope] = Field(min_length=1, description=SCOPES, examples=[["feeds:read"]])
    ttl_days: int | None = Field(
        default=365,
        ge=1,
        le=3650,
        description="Lifetime in days (1-3650); null: it never expires",
        examples=[365],
    )


class SecretRotate(Strict):
    """How long the old webhook secret keeps co-signing events."""

    # The old secret keeps co-signing this long, so receivers can switch without a gap.
    overlap_hours: float = Field(
        default=24,
        ge=0,
        le=24 * 30,
        description="Hours (0-720) the old secret keeps co-signing (a second signature), so "
        "receivers can switch without a gap; 0 drops it at once",
        examples=[24],
    )


class KeyRotate(Strict):
    """How long the old API key keeps working."""

    overlap_hours: float = Field(
        default=24,
        ge=0,
        le=24 * 30,
        description="Hours (0-720) the old key keeps working (less if it expires sooner); 0 "
        "ends it at once",
        examples=[24],
    )


class KeyRead(BaseModel):
    """One of a partner's API keys (never the secret)."""

    model_config = ConfigDict(from_attributes=True)

    prefix: str = Field(description=PREFIX, examples=["551222fb5f0f"])
    scopes: list[str] = Field(description=SCOPES, examples=[["feeds:read"]])
    created_at: datetime = Field(
        description="When it was issued (UTC)", examples=["2025-05-01T02:00:00Z"]
    )
    expires_at: datetime | None = Field(description=KEY_EXPIRES, examples=["2026-05-01T02:00:00Z"])
    revoked_at: datetime | None = Field(
        description="When it was revoked (UTC); null if never", examples=[None]
    )


class KeyIssued(BaseModel):
    """The full key appears here once and is never shown again."""

    key: str = Field(
        description="The API key, `rk_<prefix>_<secret>`: the partner sends it as "
        "`Authorization: Bearer ...`. Only its hash is stored",
        examples=["rk_551222fb5f0f_dVNm-LQiowC03b0j2GHoOZSn-31EEHienzLsGcNYBKQ"],
    )
    prefix: str = Field(description=PREFIX, examples=["551222fb5f0f"])
    scopes: list[str] = Field(description=SCOPES, examples=[["feeds:read"]])
    expires_at: datetime | None = Field(description=KEY_EXPIRES, examples=["2026-05-01T02:00:00Z"])


class PartnerCreated(BaseModel):
    """The new partner and its first key (shown once)."""

    partner: PartnerRead = Field(description="The partner account")
    key: KeyIssued = Field(description="Its first API key: in this response only")


class EndpointCreate(Strict):
    """A webhook endpoint to register."""

    url: HttpUrl = Field(
        description="Where signed events are POSTed; in production https, resolving only to "
        "public addresses (checked now and before every send)",
        examples=["https://maps.example/hooks/reunite"],
    )
    events: list[Annotated[str, StringConstraints(pattern=r"^alert\.[a-z]+$")]] = Field(
        default_factory=list,
        max_length=len(EVENTS),
        description="Events to receive: " + ", ".join(EVENTS) + "; empty: all five",
        examples=[list(EVENTS)],
    )
    language: Annotated[str, StringConstraints(max_length=16)] | None = Field(
        default=None,
        description="Send only the texts in this language (e.g. zh-CN) when the alert has "
        "it; null: every language",
        examples=["zh-CN"],
    )
    # Seconds our request may take; None: the default (3 s).
    timeout_s: float | None = Field(
        default=None,
        ge=0.5,
        le=10,
        description="Seconds a delivery may take (0.5-10) before it is retried; null: 3",
        examples=[5],
    )

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown events {unknown}; known: {list(EVENTS)}")
        return value


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The endpoint's id", examples=[7])
    url: str = Field(
        description="Where events are POSTed", examples=["https://maps.example/hooks/reunite"]
    )
    events: list[str] = Field(
        description="Events it receives; empty: all five", examples=[list(EVENTS)]
    )
    language: str | None = Field(
        description="The one language of texts it gets; null: every language", examples=[None]
    )
    timeout_s: float | None = Field(
        description="Seconds a delivery may take; null: 3", examples=[None]
    )
    active: bool = Field(
        description="false once removed, or after the endpoint answered 410 Gone",
        examples=[True],
    )
    created_at: datetime = Field(
        description="When it was registered (UTC)", examples=["2025-05-01T02:05:00Z"]
    )


class EndpointCreated(BaseModel):
    """The signing secret appears here once and is never shown again."""

    endpoint: EndpointRead = Field(description="The endpoint")
    secret: str = Field(
        description="The Standard Webhooks signing secret, `whsec_` and base64: in this "
        "response only",
        examples=["whsec_HfLXPx8zOCueuH8MX8o+fXuLItZYDCda"],
    )


class DeliveryRead(BaseModel):
    """One POST of an event to one of the partner's endpoints."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The attempt's id", examples=[981])
    message_id: str = Field(description=MESSAGE_ID, examples=[MESSAGE])
    endpoint_id: int = Field(description="The endpoint it went to", examples=[7])
    attempt: int = Field(description="1 for the first try, then 2, 3, ...", examples=[1])
    outcome: str = Field(
        description="ok; retry (timeout, unreachable, 429 or 5xx: tried again with backoff); "
        "dead_target (410: the endpoint is disabled); failed (another 4xx, a non-public "
        "address or an event too large: not retried)",
        examples=["ok"],
    )
    reason: str = Field(
        description="What happened, e.g. ok, http_503, timeout, endpoint_unreachable, "
        "body_too_large",
        examples=["ok"],
    )
    status: int | None = Field(
        description="The endpoint's HTTP status; null when there was no answer", examples=[204]
    )
    duration_ms: int = Field(description="How long the POST took, in ms", examples=[84])
    at: datetime = Field(description="When it was made (UTC)", examples=["2025-06-01T00:52:03Z"])


class RedeliveryRequest(Strict):
    """One message to deliver to one endpoint again."""

    message_id: Annotated[str, StringConstraints(max_length=120)] = Field(
        description=MESSAGE_ID, examples=[MESSAGE]
    )
    endpoint_id: int = Field(description="One of the partner's endpoints", examples=[7])


class RedeliveryQueued(BaseModel):
    """A redelivery on its way."""

    message_id: str = Field(description=MESSAGE_ID, examples=[MESSAGE])
    endpoint_id: int = Field(description="The endpoint it goes to", examples=[7])
    via: str = Field(
        description="dead_letter_replay (it had been dead-lettered: the dead letter is "
        "replayed) or redelivery (the same signed event, same webhook-id, sent once more)",
        examples=["redelivery"],
    )  # "dead_letter_replay" or "redelivery"
