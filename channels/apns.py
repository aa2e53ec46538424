"""Apple Push Notification service channel (provider API, HTTP/2, token auth).

HTTP/2 client: channels/http2.py, libcurl's multi interface (pycurl, nghttp2) on the asyncio
loop. Not `apns2` (does not import on Python >= 3.10) and not `aioapns` (its hosts are
hard-coded, so it cannot be pointed at a local peer, and it classifies answers itself). Not
httpx (~1 ms of CPU per push) nor asyncio over the pure-Python `h2` (150 us per push, 2.2x the
Node library Parse Server uses): docs/PERFORMANCE.md, "Issue 16". The pool spreads streams over
a few connections (APNs recommends several for throughput) and caps streams per connection.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any, ClassVar

import jwt
from pydantic import SecretStr

from channels.base import (
    Clock,
    Delivery,
    Outcome,
    Recipient,
    parse_retry_after,
)
from channels.http2 import Http2Pool, TransportError
from channels.messages import RenderedMessage, truncate_bytes
from ops.platform.channel_settings import ApnsSettings

MAX_PAYLOAD_BYTES = 4096
MAX_COLLAPSE_ID_BYTES = 64
_APNS_ID_PREFIX = uuid.UUID("7f3c2a4e-5b1d-4c8e-9a6f-2d0e1b3c4a5f").bytes  # uuid5 namespace
DEAD_REASONS = frozenset({"BadDeviceToken", "Unregistered"})


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
    """Stable apns-id per message and device, so retries are recognisable in Apple's logs:
    uuid.uuid5 of "message:token", built from the digest directly (a third of uuid5's cost,
    which was a tenth of a push's)."""
    raw = bytearray(hashlib.sha1(_APNS_ID_PREFIX + f"{message_id}:{token}".encode()).digest())
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


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
            "status": str(message.status),
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


_OK = Outcome.ok(status=200)


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
    if status == 429:
        return Outcome.throttle(reason or "http_429", retry_after, status=status)
    if status >= 500:
        return Outcome.retry(reason or f"http_{status}", retry_after, status=status)
    return Outcome.failed(reason or f"http_{status}", status=status)


class ApnsChannel:
    """Sends alert pushes to iOS devices over a small pool of HTTP/2 connections."""

    name: ClassVar[str] = "apns"
    rate_per_second: ClassVar[float] = 50_000.0  # shared by every worker; Apple sets no fixed cap
    batch_size: ClassVar[int] = 500
    concurrency: ClassVar[int] = 200  # HTTP/2 streams in flight per batch
    max_body_bytes: ClassVar[int] = MAX_PAYLOAD_BYTES

    def __init__(self, settings: ApnsSettings, *, clock: Clock = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self.token = ProviderToken(
            settings.team_id, settings.key_id, settings.auth_key, clock, settings.token_refresh_s
        )
        self._pool = Http2Pool(
            settings.base_url,
            settings.transport,
            connections=settings.connections,
            streams_per_connection=settings.streams_per_connection,
        )
        self._topic = settings.topic.encode()
        self._auth_token = ""
        self._auth_field = b""
        self._prepared: dict[tuple, tuple[float, bytes | None, tuple[bytes, ...]]] = {}

    async def send(self, target: Recipient, delivery: Delivery) -> Outcome:
        """Push one case message to one device token and classify Apple's answer."""
        expires, payload, fixed = self._prepare(delivery, target.language)
        if expires <= self._clock():
            return Outcome.failed("expired")
        if payload is None:
            return Outcome.failed("PayloadTooLarge")
        push_id = apns_id(delivery.message_id, target.address)
        path = "/3/device/" + target.address
        outcome = await self._post(path, [*fixed, b"apns-id: " + push_id.encode()], payload)
        if outcome.reason == "ExpiredProviderToken":
            # Apple says our JWT expired: sign a fresh one and try once more right away.
            outcome = await self._post(path, [*fixed, b"apns-id: " + push_id.encode()], payload)
        if outcome is _OK:
            # Apple answers with the apns-id it was sent: ours, without reading the answer's
            # headers on every push.
            return Outcome.ok(status=200, provider_id=push_id)
        return outcome

    def _prepare(
        self, delivery: Delivery, language: str | None
    ) -> tuple[float, bytes | None, tuple[bytes, ...]]:
        """(expiry, payload, shared header fields) of a message in a language: made once per
        message, not per push (every device of a message gets the same bytes)."""
        key = (delivery.message_id, language, delivery.expires_at)
        found = self._prepared.get(key)
        if found is None:
            expires = delivery.expires_at.timestamp()
            collapse = collapse_id(delivery.case_id)
            payload = build_payload(delivery.message_for(language), collapse)
            fixed = (
                b"apns-push-type: alert",
                b"apns-priority: 10",
                b"apns-expiration: " + str(int(expires)).encode(),
                b"apns-collapse-id: " + collapse.encode(),
                b"apns-topic: " + self._topic,
                b"content-type: application/json",
                b"accept:",  # an empty value drops libcurl's own "Accept: */*"
            )
            if len(self._prepared) >= 256:
                self._prepared.clear()
            found = self._prepared[key] = (expires, payload, fixed)
        return found

    async def _post(self, path: str, fields: list[bytes], payload: bytes) -> Outcome:
        jwt_token = self.token.current()
        if jwt_token != self._auth_token:
            self._auth_token, self._auth_field = (
                jwt_token,
                b"authorization: bearer " + jwt_token.encode(),
            )
        fields.append(self._auth_field)
        try:
            response = await self._pool.post(path, fields, payload)
        except TimeoutError:
            return Outcome.retry("timeout")
        except TransportError as exc:  # connect/TLS/protocol errors, resets, lost connections
            return Outcome.retry(exc.reason)
        if response.status == 200:
            return _OK
        reason = ""
        if response.status != 200:
            try:
                reason = str(json.loads(response.body).get("reason", ""))
            except (ValueError, AttributeError):
                reason = ""
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        outcome = classify(response.status, reason, retry_after)
        if outcome.reason == "ExpiredProviderToken":
            self.token.invalidate(jwt_token)
        return outcome

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()
