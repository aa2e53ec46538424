"""What every channel shares: the `Channel` protocol, the inputs of a send and its `Outcome`.

A channel classifies the provider's answer itself; the task that calls it only reads the
outcome: `ok`, `retry` (maybe with a delay), `dead_target` (deactivate the device or endpoint)
or `failed` (permanent, recorded and not retried). Reasons are short machine-readable codes
(provider reason strings or our own), never personal data, so they can go in the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import SecretStr

from channels.messages import AlertContent, AlertStatus, MessageKind, RenderedMessage

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
    # The provider asked us to slow down (HTTP 429, SMPP ESME_RTHROTTLED): a retry, but the
    # endpoint answered, so it is no failure for its circuit breaker.
    throttled: bool = False

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
    def throttle(
        cls, reason: str, retry_after: float | None = None, *, status: int | None = None
    ) -> Outcome:
        """The provider is pacing us: send again later, and do not count it against the
        endpoint's breaker (it answered; we were too fast)."""
        return cls(
            OutcomeKind.RETRY, reason, retry_after=retry_after, status=status, throttled=True
        )

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


def cap_number(value: float) -> str:
    """A coordinate or radius as CAP text: 6 decimals, never "-0.000000"."""
    text = f"{value:.6f}"
    return "0.000000" if text == "-0.000000" else text


@dataclass(frozen=True, slots=True)
class Area:
    """The alert area as messages, feeds, partners and carriers get it; never a device list.

    Each message stores it as JSON (`to_json`, `from_json`): CAP circle and polygon text at
    6 decimals, the radius and the centre.
    """

    polygon: tuple[tuple[float, float], ...]  # (lat, lon) pairs, closed ring
    circle: str | None = None  # CAP circle text, "lat,lon radius_km", for a circle
    radius_km: float | None = None
    center: tuple[float, float] | None = None
    cells: tuple[str, ...] = ()  # coarse geo cells (e.g. H3) for topic fan-out

    @property
    def description(self) -> str:
        """A short human description ("200 km around 39.904,116.407")."""
        if self.radius_km and self.center is not None:
            lat, lon = self.center
            return f"{self.radius_km:g} km around {lat:.3f},{lon:.3f}"
        return "alert area"

    def cap_polygon(self) -> str:
        """CAP 1.2 polygon text: 'lat,lon' pairs separated by spaces, 6 decimals."""
        return " ".join(f"{cap_number(lat)},{cap_number(lon)}" for lat, lon in self.polygon)

    def geojson(self) -> dict:
        """GeoJSON Polygon geometry (lon, lat order)."""
        return {"type": "Polygon", "coordinates": [[[lon, lat] for lat, lon in self.polygon]]}

    def to_json(self) -> dict[str, Any]:
        """The form stored with a message (and read by feeds and partner filters)."""
        return {
            "cap_circle": self.circle,
            "cap_polygon": self.cap_polygon(),
            "radius_km": self.radius_km,
            "center": list(self.center) if self.center is not None else None,
        }

    @staticmethod
    def parse_polygon(text: str) -> tuple[tuple[float, float], ...]:
        """(lat, lon) pairs from CAP polygon text."""
        pairs = []
        for pair in text.split():
            lat, lon = pair.split(",")
            pairs.append((float(lat), float(lon)))
        return tuple(pairs)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Area | None:
        """The area stored with a message; None when the message has none."""
        if not doc:
            return None
        center = doc.get("center")
        return cls(
            polygon=cls.parse_polygon(str(doc.get("cap_polygon") or "")),
            circle=doc.get("cap_circle"),
            radius_km=doc.get("radius_km"),
            center=(float(center[0]), float(center[1])) if center else None,
            cells=tuple(doc.get("cells") or ()),
        )


@dataclass(frozen=True, slots=True)
class Recipient:
    """A device token or phone number plus the language its owner reads.

    `target_id` and `partner_id` are the ledger's names for it (device id, partner), so a
    channel that keeps state per target (the SMS parts a carrier accepted, its receipts) keys
    it without the address; None when the caller has no ledger.
    """

    address: str
    language: str = "zh-CN"
    target_id: int | None = None
    partner_id: int = 0


class Pacer(Protocol):
    """A rate shared by every worker, taken per provider request (an SMS part, not a message)."""

    async def take(self) -> None:
        """Wait until one more request may go out."""
        ...

    def hold(self, seconds: float) -> None:
        """The provider throttled us: nobody sends for this long."""
        ...


@dataclass(frozen=True, slots=True)
class PartnerEndpoint:
    """A partner's webhook endpoint with its Standard Webhooks secret ('whsec_...')."""

    partner_id: str
    url: str
    secret: SecretStr
    language: str | None = None  # None: send every language
    # During a secret rotation's overlap the old secret signs too (a second signature).
    previous_secret: SecretStr | None = None
    timeout_s: float | None = None  # this partner's request timeout (None: the default)


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
    status: AlertStatus = AlertStatus.ACTUAL  # a drill or test is marked in every text too

    def message_for(self, language: str | None) -> RenderedMessage:
        """The rendering for a language, falling back to the default one."""
        if language is not None and language in self.messages:
            return self.messages[language]
        return next(iter(self.messages.values()))

    @property
    def collapse_key(self) -> str:
        """Per-case key: a later message of the case replaces an undelivered earlier one."""
        return f"case-{self.case_id}"


class DeviceRecord(Protocol):
    """One sendable device: its platform (channel name) and decrypted address."""

    id: int
    partner_id: int
    platform: str
    address: str
    locale: str


class Devices(Protocol):
    """The device registry channels send to; `geo.devices` implements it.

    Only active, opted-in devices are returned: anything else cannot be sent to.
    """

    def routes(
        self, session: Any, device_ids: Sequence[int], *, test_only: bool = False
    ) -> Iterable[tuple[int, str, int]]:
        """(device id, platform, partner id) of the sendable devices among the ids; only the
        partners' test devices when test_only (a drill or system test)."""
        ...

    def addresses(self, session: Any, device_ids: Sequence[int]) -> Sequence[DeviceRecord]:
        """The sendable devices among the ids, with their decrypted addresses."""
        ...

    def partners_of(self, session: Any, device_ids: Sequence[int]) -> Mapping[int, int]:
        """Device id -> partner id, for any device (to account for those gone)."""
        ...

    def deactivate(self, session: Any, device_ids: Iterable[int], reason: str) -> int:
        """Stop sending to these devices (the provider said the token is gone)."""
        ...


class AlertSource(Protocol):
    """Where a message's words come from; the dispatch flow implements it from the case."""

    def content(
        self, session: Any, case_id: str, kind: MessageKind, wave: int
    ) -> tuple[AlertContent, Sequence[str]] | None:
        """The alert content and its languages (None when the case is gone)."""
        ...


class Audience(Protocol):
    """Which partners get a message, and its announcement on the live stream (alerts.feeds)."""

    def reaches(self, session: Any, message: Any) -> Callable[[int], bool]:
        """A predicate partner id -> bool for one message."""
        ...

    def announce(self, session: Any, message: Any, event: str) -> None:
        """Put the message on the partners' live stream, once."""
        ...


class Progress(Protocol):
    """Milestones the fan-out metrics measure against (the dispatch flow implements it)."""

    def approved_at(self, case_id: str) -> float | None:
        """When the case was approved (epoch seconds), None if unknown."""
        ...

    def targeting_finished(self, message_id: str) -> bool:
        """True once every shard of the message's wave was targeted (no targets will be added)."""
        ...


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
    if status == 429:
        return Outcome.throttle(reason, retry_after, status=status)
    if status >= 500:
        return Outcome.retry(reason, retry_after, status=status)
    return Outcome.failed(reason, status=status)
