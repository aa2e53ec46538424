"""A generic HTTP SMS gateway: one JSON POST per message, bearer auth, plus area broadcast.

Many carriers and aggregators expose SMS as JSON over HTTPS rather than SMPP, and carriers
that can target by cell (cell broadcast or location-based SMS) take an area of CAP polygons
(`{"area": {"polygons": [...]}}`) and do the targeting themselves: `broadcast_area`.

Each message may name a `status_callback` (settings.status_callback_url): the gateway POSTs
the message's fate there, signed (Standard Webhooks), and the API's receipts route counts it
in the ledger by the id the gateway answered with (`channels.sms_parts`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from channels import sms
from channels.base import (
    Clock,
    Delivery,
    Outcome,
    Recipient,
    classify_http,
    parse_retry_after,
)
from channels.sms_parts import MemoryParts, PartStore, Receipt
from ops.platform.channel_settings import SMS_MAX_PARTS, SmsHttpSettings

# Error codes gateways use for a number that does not exist; anything else 4xx is permanent.
DEAD_NUMBER_CODES = frozenset(
    {"invalid_destination", "invalid_number", "unknown_subscriber", "number_not_found"}
)
CB_MESSAGE_ID_CHILD_ABDUCTION = 4379


class ReportRefused(ValueError):
    """A delivery report we do not take."""


class ReportUnsigned(ReportRefused):
    """Not signed with our callback secret, or signed too long ago (a replay)."""


class ReportInvalid(ReportRefused):
    """Signed, but not a report: no id or no status."""


def read_report(secret: SecretStr, body: bytes, headers: Mapping[str, str]) -> Receipt:
    """A gateway's signed delivery report -> receipt: Standard Webhooks signature and
    timestamp (5 minutes of tolerance) checked, then {"id": gateway id, "status": ...}."""
    try:
        doc = Webhook(secret.get_secret_value()).verify(body, dict(headers))
    except WebhookVerificationError as exc:
        raise ReportUnsigned(str(exc)) from None
    except ValueError as exc:  # a signed body that is not JSON (JSONDecodeError is one)
        raise ReportInvalid(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("id") or not doc.get("status"):
        raise ReportInvalid("a report needs an id and a status")
    status = str(doc["status"]).lower()
    return Receipt(str(doc["id"]), status == "delivered", status)


def classify(status: int, error_code: str, retry_after: float | None) -> Outcome:
    """Gateway answer -> outcome: known dead-number codes and 410 are dead targets."""
    if 400 <= status < 500 and error_code in DEAD_NUMBER_CODES:
        return Outcome.dead_target(error_code, status=status)
    reason = "ok" if status < 300 else (error_code or f"http_{status}")
    return classify_http(status, reason, retry_after)


class SmsHttpChannel:
    """Sends SMS through an HTTP gateway and asks carriers for area broadcasts."""

    name: ClassVar[str] = "sms_http"
    rate_per_second: ClassVar[float] = 20.0  # per account; gateways cap like carriers
    batch_size: ClassVar[int] = 50
    concurrency: ClassVar[int] = 10
    max_body_bytes: ClassVar[int] = 16 * 1024

    def __init__(
        self,
        settings: SmsHttpSettings,
        *,
        clock: Clock = time.time,
        max_parts: int = SMS_MAX_PARTS,
        parts: PartStore | None = None,
    ) -> None:
        self.settings = settings
        self.max_parts = max_parts
        self.parts: PartStore = parts if parts is not None else MemoryParts()
        self._clock = clock
        t = settings.transport
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            verify=t.ssl_verify(),
            timeout=httpx.Timeout(t.timeout_s, connect=t.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.max_connections),
            headers={"authorization": f"Bearer {settings.api_token.get_secret_value()}"},
        )

    async def send(self, target: Recipient, delivery: Delivery) -> Outcome:
        """Send one case SMS to one number (once: a message the gateway took is not resent)."""
        accepted = self.parts.accepted(delivery.message_id, target)
        if 1 in accepted:
            return Outcome.ok(status=202, provider_id=accepted[1] or None)
        plan = sms.plan(delivery.message_for(target.language).sms_text, self.max_parts)
        key = hashlib.sha256(f"{delivery.message_id}:{target.address}".encode()).hexdigest()[:32]
        body = {
            "id": key,
            "to": target.address,
            "from": self.settings.sender_id,
            "text": plan.text,
            "encoding": str(plan.encoding),
            "parts": plan.part_count,
            "expires_at": delivery.expires_at.astimezone(UTC).isoformat(),
        }
        if self.settings.status_callback_url:
            body["status_callback"] = self.settings.status_callback_url
        outcome = await self._post(self.settings.send_path, body, key)
        if outcome.is_ok:
            # The gateway bills and splits the parts itself: one entry, under its id.
            self.parts.accept(delivery.message_id, target, 1, 1, outcome.provider_id or "")
        return outcome

    async def broadcast_area(
        self,
        area_cap_polygons: Sequence[str] | str,
        text: str,
        *,
        message_id: str | None = None,
        expires_at: datetime | None = None,
        cb_message_identifier: int = CB_MESSAGE_ID_CHILD_ABDUCTION,
    ) -> Outcome:
        """Ask the carrier to broadcast text to every handset in an area of CAP polygons (one
        area, several polygons, as CAP's <area> holds them: a ring is sent as pieces)."""
        polygons = [area_cap_polygons] if isinstance(area_cap_polygons, str) else area_cap_polygons
        digest = hashlib.sha256(f"{'|'.join(polygons)}|{text}".encode()).hexdigest()[:32]
        key = message_id or digest
        body: dict[str, Any] = {
            "id": key,
            "area": {"polygons": list(polygons)},
            "text": text,
            "encoding": str(sms.detect_encoding(text)),
            "cb_message_identifier": cb_message_identifier,
        }
        if expires_at is not None:
            body["expires_at"] = expires_at.astimezone(UTC).isoformat()
        return await self._post(self.settings.broadcast_path, body, key)

    async def _post(self, path: str, body: dict[str, Any], key: str) -> Outcome:
        try:
            response = await self._client.post(path, json=body, headers={"idempotency-key": key})
        except httpx.TimeoutException:
            return Outcome.retry("timeout")
        except httpx.TransportError as exc:
            return Outcome.retry(f"transport_{type(exc).__name__}")
        status = response.status_code
        code = ""
        provider_id = None
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        if isinstance(doc, dict):
            code = str(doc.get("error", "") or "")
            provider_id = doc.get("id")
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        outcome = classify(status, code, retry_after)
        if outcome.is_ok:
            return Outcome.ok(status=status, provider_id=provider_id)
        return outcome

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
