"""A local HTTP SMS gateway: POST /v1/messages and POST /v1/broadcasts, bearer auth.

Numbers starting with `invalid_prefix` get 400 invalid_destination; `busy_first` sends get
429 + Retry-After; broadcasts need an area of valid CAP polygons (each >= 4 pairs, closed).

Delivery reports, as gateways send them: a message naming a `status_callback` gets, after
`report_delay_s`, a POST there of {"id": gateway id, "reference": our id, "to", "status":
"delivered" (or "failed" for numbers in `undelivered`), "at"}, signed with `callback_secret`
the Standard Webhooks way, and sent again (up to `report_attempts`) until it gets a 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from ops.peers._runtime import (
    Endpoint,
    Receive,
    Scope,
    Send,
    TlsFiles,
    headers_of,
    lifespan,
    read_body,
    respond,
    serve_asgi,
)


def valid_cap_polygon(text: str) -> bool:
    """CAP 1.2 polygon: at least 4 'lat,lon' pairs, first equals last, in range."""
    try:
        pairs = [tuple(float(v) for v in p.split(",")) for p in text.split()]
    except ValueError:
        return False
    return (
        len(pairs) >= 4
        and all(len(p) == 2 and -90 <= p[0] <= 90 and -180 <= p[1] <= 180 for p in pairs)
        and pairs[0] == pairs[-1]
    )


@dataclass
class SmsGatewaySink:
    """ASGI app recording messages and broadcasts."""

    api_token: str
    invalid_prefix: str = "999"
    busy_first: int = 0
    retry_after: str = "1"
    callback_secret: str | None = None  # "whsec_...": reports are sent only with one
    report_delay_s: float = 0.05
    report_attempts: int = 3
    undelivered: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)
    # (report, HTTP status of each attempt; 0 for no answer)
    reports: list[tuple[dict[str, Any], list[int]]] = field(default_factory=list)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        h = headers_of(scope)
        if h.get("authorization") != f"Bearer {self.api_token}":
            await respond(send, 401, {"error": "unauthorized"})
            return
        try:
            doc = json.loads(body)
        except ValueError:
            await respond(send, 400, {"error": "bad_json"})
            return
        with self._lock:
            self._count += 1
            n = self._count
            self.idempotency_keys.append(h.get("idempotency-key", ""))
        if n <= self.busy_first:
            await respond(send, 429, {"error": "rate_limited"}, {"retry-after": self.retry_after})
            return
        path = scope["path"]
        if path == "/v1/messages":
            if str(doc.get("to", "")).startswith(self.invalid_prefix):
                await respond(send, 400, {"error": "invalid_destination"})
                return
            if not doc.get("text"):
                await respond(send, 400, {"error": "empty_text"})
                return
            gateway_id = "gw-" + secrets.token_hex(6)
            with self._lock:
                self.messages.append(doc)
            if doc.get("status_callback") and self.callback_secret:
                task = asyncio.get_running_loop().create_task(self._report(doc, gateway_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await respond(send, 202, {"id": gateway_id})
            return
        elif path == "/v1/broadcasts":
            polygons = doc.get("area", {}).get("polygons") or [""]
            if not all(isinstance(p, str) and valid_cap_polygon(p) for p in polygons):
                await respond(send, 400, {"error": "invalid_area"})
                return
            with self._lock:
                self.broadcasts.append(doc)
        else:
            await respond(send, 404, {"error": "not_found"})
            return
        await respond(send, 202, {"id": "gw-" + secrets.token_hex(6)})

    async def _report(self, message: dict[str, Any], gateway_id: str) -> None:
        """POST the message's delivery report to its status_callback, signed, until a 2xx."""
        await asyncio.sleep(self.report_delay_s)
        to = str(message.get("to", ""))
        report = {
            "id": gateway_id,
            "reference": message.get("id"),
            "to": to,
            "status": "failed" if to in self.undelivered else "delivered",
            "at": datetime.now(UTC).isoformat(),
        }
        body = json.dumps(report)
        statuses: list[int] = []
        with self._lock:
            self.reports.append((report, statuses))
        assert self.callback_secret is not None
        signer = Webhook(self.callback_secret)
        url = str(message["status_callback"])
        async with httpx.AsyncClient(timeout=5.0) as client:
            for attempt in range(self.report_attempts):
                msg_id = f"{gateway_id}-{attempt}"
                now = datetime.now(UTC)
                headers = {
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": signer.sign(msg_id, now, body),
                }
                try:
                    res = await client.post(url, content=body, headers=headers)
                    statuses.append(res.status_code)
                    if res.is_success:
                        return
                except httpx.HTTPError:
                    statuses.append(0)
                await asyncio.sleep(0.2 * (attempt + 1))


@contextmanager
def running(sink: SmsGatewaySink, tls: TlsFiles | None = None, port: int = 0) -> Iterator[Endpoint]:
    """Serve the gateway; yields its base URL."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serve_asgi(sink, tls=tls, port=port, name="sms-gateway-sink"))
        yield Endpoint(url, tls.ca_bundle if tls else None)
