"""What every channel shares: the `Channel` protocol, the inputs of a send and its `Outcome`.

A channel classifies the provider's answer itself; the task that calls it only reads the
outcome: `ok`, `retry` (maybe with a delay), `dead_target` (deactivate the device or endpoint)
or `failed` (permanent, recorded and not retried). Reasons are short machine-readable codes
(provider reason strings or our own), never personal data, so they can go in the ledger.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, Field, SecretStr

from channels.messages import MessageKind, RenderedMessage

Clock = Callable[[], float]
"""Seconds since the epoch; time.time in production, a fake in tests."""


class OutcomeKind(StrEnum):
    OK = "ok"
    RETRY = "retry"
    DEAD_TARGET = "dead_target"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    reason: str  # machine-readable, e.g. "Unregistered", "http_503", "timeout"
    retry_after: float | None = None  # seconds; only for retry
    status: int | None = None  # HTTP status or SMPP command_status, for the ledger
    provider_id: str | None = None  # apns-id, FCM message name, SMSC message id

    @classmethod
    def ok(
        cls, reason: str = "ok", *, status: int | None = None, provider_id: str | None = None
    ) -> Outcome:
        """Delivered to the provider."""
        return cls(OutcomeKind.OK, reason, status=status, provider_id=provider_id)

    @classmethod
    def retry(
        cls, reason: str, retry_after: float | None = None, *, status: int | None = None
    ) -> Outcome:
        """Transient: send again later, after retry_after seconds if the provider said so."""
        return cls(OutcomeKind.RETRY, reason, retry_after=retry_after, status=status)

    @classmethod
    def dead_target(cls, reason: str, *, status: int | None = None) -> Outcome:
        """The device, number or endpoint no longer exists: deactivate it."""
        return cls(OutcomeKind.DEAD_TARGET, reason, status=status)

    @classmethod
    def failed(cls, reason: str, *, status: int | None = None) -> Outcome:
        """Permanent failure of this message: record it, do not retry."""
        return cls(OutcomeKind.FAILED, reason, status=status)

    @property
    def is_ok(self) -> bool:
        """True when the provider accepted the message."""
        return self.kind is OutcomeKind.OK


@dataclass(frozen=True, slots=True)
class Area:
    """The alert area as partners and carriers get it; never a device list."""

    description: str
    polygon: tuple[tuple[float, float], ...]  # (lat, lon) pairs, closed ring
    cells: tuple[str, ...] = ()  # coarse geo cells (e.g. H3) for topic fan-out

    def cap_polygon(self) -> str:
        """CAP 1.2 polygon text: 'lat,lon' pairs separated by spaces, 6 decimals at most."""
        return " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in self.polygon)

    def geojson(self) -> dict:
        """GeoJSON Polygon geometry (lon, lat order)."""
        return {"type": "Polygon", "coordinates": [[[lon, lat] for lat, lon in self.polygon]]}


@dataclass(frozen=True, slots=True)
class Recipient:
    """A device token or phone number plus the language its owner reads."""

    address: str
    language: str = "zh-CN"


@dataclass(frozen=True, slots=True)
class PartnerEndpoint:
    """A partner's webhook endpoint with its Standard Webhooks secret ('whsec_...')."""

    partner_id: str
    url: str
    secret: SecretStr
    language: str | None = None  # None: send every language
    # During a secret rotation's overlap the old secret signs too (a second signature).
    previous_secret: SecretStr | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message of one case wave, rendered in every language; the same across retries."""

    message_id: str  # idempotency key for (case, wave, kind); reused on every retry
    case_id: str
    kind: MessageKind
    wave: int
    messages: Mapping[str, RenderedMessage]  # by language; the first one is the default
    expires_at: datetime  # aware; providers drop the message after this
    area: Area | None = None
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def message_for(self, language: str | None) -> RenderedMessage:
        """The rendering for a language, falling back to the default one."""
        if language is not None and language in self.messages:
            return self.messages[language]
        return next(iter(self.messages.values()))

    @property
    def collapse_key(self) -> str:
        """Per-case key: a later message of the case replaces an undelivered earlier one."""
        return f"case-{self.case_id}"


TargetT_contra = TypeVar("TargetT_contra", contravariant=True)


@runtime_checkable
class Channel(Protocol[TargetT_contra]):
    """A delivery channel: one provider, one file."""

    name: ClassVar[str]
    rate_per_second: ClassVar[float]  # sustained sends per second per process the provider allows
    max_body_bytes: ClassVar[int]
    batch_size: ClassVar[int]  # targets a task should hand over at once

    async def send(self, target: TargetT_contra, delivery: Delivery) -> Outcome:
        """Send one message to one target and classify the answer."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


class HttpTransportSettings(BaseModel):
    """TLS and timeout settings shared by the HTTP channels."""

    timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    verify_tls: bool = True
    ca_bundle: Path | None = None  # a private CA, e.g. the test peers' self-signed cert

    def ssl_verify(self) -> ssl.SSLContext | bool:
        """What httpx's verify= wants."""
        if not self.verify_tls:
            return False
        if self.ca_bundle is not None:
            return ssl.create_default_context(cafile=str(self.ca_bundle))
        return True


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify_http(status: int, reason: str, retry_after: float | None) -> Outcome:
    """The default table for HTTP providers: 2xx ok, 410 dead, 429/5xx retry, other 4xx failed."""
    if 200 <= status < 300:
        return Outcome.ok(reason, status=status)
    if status == 410:
        return Outcome.dead_target(reason, status=status)
    if status == 429 or status >= 500:
        return Outcome.retry(reason, retry_after, status=status)
    return Outcome.failed(reason, status=status)
