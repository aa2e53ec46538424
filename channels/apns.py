"""Apple Push Notification service channel (provider API, HTTP/2, token auth).

HTTP/2 client: httpx with http2=True (which drives the `h2` state machine). Not `apns2` (does
not import on Python >= 3.10) and not `aioapns` (its hosts are hard-coded, so it cannot be
pointed at a local peer, and it classifies answers itself). httpx gives us a configurable base
URL and CA bundle, typed timeout/connection exceptions to classify as retry, and is already the
project's HTTP client. httpx is known to stumble at very high stream concurrency on one
connection, so the pool caps streams per connection with a semaphore and spreads load over a
few connections instead (APNs recommends several connections for throughput anyway).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
from pydantic import BaseModel, Field, SecretStr

from channels.base import (
    Clock,
    Delivery,
    HttpTransportSettings,
    Outcome,
    Recipient,
    parse_retry_after,
)
from channels.messages import RenderedMessage, truncate_bytes

MAX_PAYLOAD_BYTES = 4096
MAX_COLLAPSE_ID_BYTES = 64
_APNS_ID_NAMESPACE = uuid.UUID("7f3c2a4e-5b1d-4c8e-9a6f-2d0e1b3c4a5f")
DEAD_REASONS = frozenset({"BadDeviceToken", "Unregistered"})


class ApnsSettings(BaseModel):
    """APNs provider settings; auth_key is the .p8 PEM text."""

    base_url: str = "https://api.push.apple.com"
    topic: str  # the app's bundle id
    team_id: str
    key_id: str
    auth_key: SecretStr
    connections: int = Field(default=2, ge=1, le=32)
    streams_per_connection: int = Field(default=100, ge=1, le=1000)
    # Apple: refresh no more often than every 20 min and no less often than every 60 min.
    token_refresh_s: float = Field(default=50 * 60, ge=20 * 60, le=60 * 60)
    default_ttl_s: int = Field(default=24 * 3600, ge=0)
    transport: HttpTransportSettings = HttpTransportSettings()

    @staticmethod
    def read_auth_key(path: Path) -> SecretStr:
        """Read a .p8 key file into a SecretStr."""
        return SecretStr(path.read_text())


class ProviderToken:
    """The ES256 provider JWT, cached and re-signed on age or when APNs calls it expired."""

    def __init__(
        self, team_id: str, key_id: str, key_pem: SecretStr, clock: Clock, refresh_s: float
    ) -> None:
        self._team_id = team_id
        self._key_id = key_id
        self._key_pem = key_pem
        self._clock = clock
        self._refresh_s = refresh_s
        self._token: str | None = None
        self._issued_at = 0.0
        self.signed_count = 0

    def current(self) -> str:
        """The JWT to use now, signing a new one if the cached one is due for refresh."""
        now = self._clock()
        if self._token is None or now - self._issued_at >= self._refresh_s:
            self._token = jwt.encode(
                {"iss": self._team_id, "iat": int(now)},
                self._key_pem.get_secret_value(),
                algorithm="ES256",
                headers={"kid": self._key_id},
            )
            self._issued_at = now
            self.signed_count += 1
        return self._token

    def invalidate(self, token: str) -> None:
        """Drop token if still current; concurrent streams that saw it expire re-sign only once."""
        if token == self._token:
            self._token = None


def collapse_id(case_id: str) -> str:
    """Per-case apns-collapse-id within 64 bytes (hashed if the case id is long)."""
    cid = f"case-{case_id}"
    if len(cid.encode()) <= MAX_COLLAPSE_ID_BYTES:
        return cid
    return "case-" + hashlib.sha256(case_id.encode()).hexdigest()[:40]


def apns_id(message_id: str, token: str) -> str:
    """Stable apns-id per message and device, so retries are recognisable in Apple's logs."""
    return str(uuid.uuid5(_APNS_ID_NAMESPACE, f"{message_id}:{token}"))


def build_payload(message: RenderedMessage, collapse: str) -> bytes | None:
    """The JSON payload within 4096 bytes (body, then photo trimmed); None if it cannot fit."""

    def encode(body: str, photo: str | None) -> bytes:
        aps: dict[str, Any] = {
            "alert": {"title": message.title, "body": body},
            "sound": "default",
            "interruption-level": "time-sensitive",
            "thread-id": collapse,
        }
        data: dict[str, Any] = {
            "case_id": message.case_id,
            "kind": str(message.kind),
            "wave": message.wave,
            "link": message.deep_link,
        }
        if photo:
            aps["mutable-content"] = 1  # lets the notification service extension fetch the photo
            data["photo"] = photo
        doc = {"aps": aps, "reunite": data}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    raw = encode(message.body, message.photo_url)
    if len(raw) <= MAX_PAYLOAD_BYTES:
        return raw
    over = len(raw) - MAX_PAYLOAD_BYTES
    # JSON escaping can make the body cost more than its UTF-8 size: leave slack, then verify.
    body = truncate_bytes(message.body, max(0, len(message.body.encode()) - over - 64))
    for photo in (message.photo_url, None):
        raw = encode(body, photo)
        if len(raw) <= MAX_PAYLOAD_BYTES:
            return raw
    return None


def classify(status: int, reason: str, retry_after: float | None) -> Outcome:
    """APNs answer -> outcome, per Apple's table (403 ExpiredProviderToken is a retry)."""
    if status == 200:
        return Outcome.ok(status=status)
    if reason in DEAD_REASONS and status in (400, 410):
        return Outcome.dead_target(reason, status=status)
    if status == 410:
        return Outcome.dead_target(reason or "Unregistered", status=status)
    if status == 403 and reason == "ExpiredProviderToken":
        return Outcome.retry(reason, None, status=status)
    if status == 413:
        return Outcome.failed(reason or "PayloadTooLarge", status=status)
    if status == 429 or status >= 500:
        return Outcome.retry(reason or f"http_{status}", retry_after, status=status)
    return Outcome.failed(reason or f"http_{status}", status=status)


class ApnsChannel:
    """Sends alert pushes to iOS devices over a small pool of HTTP/2 connections."""

    name: ClassVar[str] = "apns"
    rate_per_second: ClassVar[float] = 2000.0
    max_body_bytes: ClassVar[int] = MAX_PAYLOAD_BYTES
    batch_size: ClassVar[int] = 500

    def __init__(self, settings: ApnsSettings, *, clock: Clock = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self.token = ProviderToken(
            settings.team_id, settings.key_id, settings.auth_key, clock, settings.token_refresh_s
        )
        t = settings.transport
        timeout = httpx.Timeout(t.timeout_s, connect=t.connect_timeout_s)
        verify = t.ssl_verify()
        # One client per connection: httpx multiplexes concurrent requests on its h2 connection.
        self._clients = [
            httpx.AsyncClient(
                base_url=settings.base_url,
                http2=True,
                verify=verify,
                timeout=timeout,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            for _ in range(settings.connections)
        ]
        self._streams = [asyncio.Semaphore(settings.streams_per_connection) for _ in self._clients]
        self._next = itertools.cycle(range(len(self._clients)))

    async def send(self, target: Recipient, delivery: Delivery) -> Outcome:
        """Push one case message to one device token and classify Apple's answer."""
        now = self._clock()
        expires = delivery.expires_at.timestamp()
        if expires <= now:
            return Outcome.failed("expired")
        message = delivery.message_for(target.language)
        collapse = collapse_id(delivery.case_id)
        payload = build_payload(message, collapse)
        if payload is None:
            return Outcome.failed("PayloadTooLarge")
        headers = {
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": str(int(expires)),
            "apns-collapse-id": collapse,
            "apns-topic": self.settings.topic,
            "apns-id": apns_id(delivery.message_id, target.address),
            "content-type": "application/json",
        }
        outcome = await self._post(target.address, headers, payload)
        if outcome.reason == "ExpiredProviderToken":
            # Apple says our JWT expired: sign a fresh one and try once more right away.
            outcome = await self._post(target.address, headers, payload)
        return outcome

    async def _post(self, token: str, headers: dict[str, str], payload: bytes) -> Outcome:
        i = next(self._next)
        jwt_token = self.token.current()
        try:
            async with self._streams[i]:
                response = await self._clients[i].post(
                    f"/3/device/{token}",
                    content=payload,
                    headers={**headers, "authorization": f"bearer {jwt_token}"},
                )
        except httpx.TimeoutException:
            return Outcome.retry("timeout")
        except httpx.TransportError as exc:  # connect/read/write/protocol errors
            return Outcome.retry(f"transport_{type(exc).__name__}")
        reason = ""
        if response.status_code != 200:
            try:
                reason = str(response.json().get("reason", ""))
            except ValueError:
                reason = ""
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        outcome = classify(response.status_code, reason, retry_after)
        if outcome.reason == "ExpiredProviderToken":
            self.token.invalidate(jwt_token)
        if outcome.is_ok:
            return Outcome.ok(status=200, provider_id=response.headers.get("apns-id"))
        return outcome

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await asyncio.gather(*(c.aclose() for c in self._clients))
