"""Partner webhook channel: one signed JSON event per case message, carrying the area.

Partners (maps, payments, ride-hailing apps...) target their own users by location, so they
get the area and the rendered texts, never a device list. Events are signed with the Standard
Webhooks scheme; the webhook-id is derived from the message and partner, so it stays the same
on every retry and partners can drop duplicates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from channels import egress
from channels.base import (
    Clock,
    Delivery,
    Outcome,
    PartnerEndpoint,
    classify_http,
    parse_retry_after,
)
from channels.messages import MessageId
from ops.platform.channel_settings import WebhookSettings

log = logging.getLogger(__name__)


def event_id(message_id: str, partner_id: str) -> str:
    """Stable webhook-id for one message to one partner (the partner's idempotency key)."""
    return "msg_" + hashlib.sha256(f"{message_id}:{partner_id}".encode()).hexdigest()[:32]


def build_event(delivery: Delivery, endpoint: PartnerEndpoint) -> dict[str, Any]:
    """The event document: case, kind, wave, expiry, area and texts per language."""
    languages = (
        [endpoint.language]
        if endpoint.language and endpoint.language in delivery.messages
        else list(delivery.messages)
    )
    area = delivery.area
    return {
        "type": str(MessageId.parse(delivery.message_id).event),
        "timestamp": delivery.sent_at.astimezone(UTC).isoformat(),
        "data": {
            "message_id": delivery.message_id,
            "case_id": delivery.case_id,
            "kind": str(delivery.kind),
            # "exercise" or "test" for a drill or system test: never act on it as real.
            "status": str(delivery.status),
            "wave": delivery.wave,
            "expires_at": delivery.expires_at.astimezone(UTC).isoformat(),
            "area": None
            if area is None
            else {
                "description": area.description,
                "cap_polygon": area.cap_polygon(),
                "geometry": area.geojson(),
                "cells": list(area.cells),
            },
            "messages": {
                lang: {
                    "title": m.title,
                    "body": m.body,
                    "sms_text": m.sms_text,
                    "link": m.deep_link,
                    "photo_url": m.photo_url,
                }
                for lang in languages
                for m in (delivery.messages[lang],)
            },
        },
    }


class WebhookChannel:
    """POSTs signed events to partner endpoints and classifies their answers."""

    name: ClassVar[str] = "webhook"
    rate_per_second: ClassVar[float] = 10.0  # per endpoint, unless its row says otherwise
    concurrency: ClassVar[int] = 2  # requests in flight per endpoint
    max_body_bytes: ClassVar[int] = 256 * 1024
    batch_size: ClassVar[int] = 1

    def __init__(
        self,
        settings: WebhookSettings | None = None,
        *,
        clock: Clock = time.time,
        allow_private: bool = True,
        resolver: egress.Resolver = egress.system_resolver,
    ):
        """`allow_private` False (production): connect only to checked public addresses."""
        self.settings = settings or WebhookSettings()
        self._clock = clock
        t = self.settings.transport
        limits = httpx.Limits(max_connections=self.settings.max_connections)
        self._client = httpx.AsyncClient(
            transport=egress.GuardedTransport(
                verify=t.ssl_verify(), limits=limits, allow_private=allow_private, resolver=resolver
            ),
            timeout=httpx.Timeout(t.timeout_s, connect=t.connect_timeout_s),
            headers={"user-agent": self.settings.user_agent},
        )

    async def send(self, target: PartnerEndpoint, delivery: Delivery) -> Outcome:
        """Deliver one signed event to one partner endpoint."""
        body = json.dumps(build_event(delivery, target), ensure_ascii=False, separators=(",", ":"))
        if len(body.encode()) > self.max_body_bytes:
            return Outcome.failed("body_too_large")
        msg_id = event_id(delivery.message_id, target.partner_id)
        # Signed per attempt: receivers reject timestamps older than a few minutes.
        now = datetime.fromtimestamp(self._clock(), UTC)
        signature = Webhook(target.secret.get_secret_value()).sign(msg_id, now, body)
        if target.previous_secret is not None:
            # Rotation overlap: receivers still on the old secret verify the second signature.
            old = Webhook(target.previous_secret.get_secret_value())
            signature += " " + old.sign(msg_id, now, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        timeout = httpx.USE_CLIENT_DEFAULT
        if target.timeout_s is not None:
            connect = min(target.timeout_s, self.settings.transport.connect_timeout_s)
            timeout = httpx.Timeout(target.timeout_s, connect=connect)
        try:
            response = await self._client.post(
                target.url, content=body.encode(), headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            return Outcome.retry("timeout")
        except httpx.TransportError as exc:
            # Partners read one generic reason: transport details would make the endpoint
            # a port scanner. The operator's log has the class.
            if egress.REFUSED in str(exc):
                log.warning("partner %s endpoint refused: non-public address", target.partner_id)
                return Outcome.failed("endpoint_unreachable")
            log.info("partner %s endpoint unreachable: %s", target.partner_id, type(exc).__name__)
            return Outcome.retry("endpoint_unreachable")
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        return classify_http(status, "ok" if status < 300 else f"http_{status}", retry_after)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()


class UnsafeUrl(ValueError):
    """A webhook URL that points somewhere the server must not call (SSRF)."""


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse non-HTTP(S) URLs and, unless allowed, hosts resolving to any non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeUrl("url: must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise UnsafeUrl("url: must not carry credentials")
    if allow_private:
        return
    if parts.scheme != "https":
        raise UnsafeUrl("url: must use https in production")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeUrl("url: host does not resolve") from None
    if not all(egress.allowed(str(info[4][0])) for info in infos):
        raise UnsafeUrl("url: host resolves to a private, loopback or reserved address")
