"""A local partner webhook receiver that verifies Standard Webhooks signatures.

POST /hooks/<partner>. Scriptable: `fail_first` answers 503 + Retry-After that many times,
`hang_s` sleeps before answering (to trip client timeouts), `gone` answers 410, `status`
forces any other status. Duplicate webhook-ids are counted, not recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

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


@dataclass(frozen=True)
class ReceivedEvent:
    partner: str
    webhook_id: str
    headers: dict[str, str]
    event: dict[str, Any]


@dataclass
class WebhookReceiver:
    """ASGI app recording verified events per partner."""

    secret: str  # "whsec_..."
    fail_first: int = 0
    retry_after: str = "2"
    hang_s: float = 0.0
    gone: bool = False
    status: int | None = None
    events: list[ReceivedEvent] = field(default_factory=list)
    duplicates: int = 0
    rejected_signatures: int = 0
    attempts: int = 0
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        h = headers_of(scope)
        with self._lock:
            self.attempts += 1
            attempt = self.attempts
        if scope["method"] != "POST" or not scope["path"].startswith("/hooks/"):
            await respond(send, 404, {"error": "not_found"})
            return
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if self.gone:
            await respond(send, 410, {"error": "endpoint_disabled"})
            return
        if self.status is not None:
            await respond(send, self.status, {"error": "scripted"})
            return
        if attempt <= self.fail_first:
            await respond(send, 503, {"error": "unavailable"}, {"retry-after": self.retry_after})
            return
        try:
            event = Webhook(self.secret).verify(body, h)
        except WebhookVerificationError:
            with self._lock:
                self.rejected_signatures += 1
            await respond(send, 401, {"error": "bad_signature"})
            return
        partner = scope["path"][len("/hooks/") :]
        with self._lock:
            if h["webhook-id"] in self._seen:
                self.duplicates += 1
            else:
                self._seen.add(h["webhook-id"])
                self.events.append(ReceivedEvent(partner, h["webhook-id"], h, event))
        await respond(send, 204)


@contextmanager
def running(
    receiver: WebhookReceiver, tls: TlsFiles | None = None, port: int = 0
) -> Iterator[Endpoint]:
    """Serve the receiver; partner URLs are f'{url}/hooks/<partner>'."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serve_asgi(receiver, tls=tls, port=port, name="webhook-sink"))
        yield Endpoint(url, tls.ca_bundle if tls else None)
