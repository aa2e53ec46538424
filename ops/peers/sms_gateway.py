"""A local HTTP SMS gateway: POST /v1/messages and POST /v1/broadcasts, bearer auth.

Numbers starting with `invalid_prefix` get 400 invalid_destination; `busy_first` sends get
429 + Retry-After; broadcasts need an area of valid CAP polygons (each >= 4 pairs, closed).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
    messages: list[dict[str, Any]] = field(default_factory=list)
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
            with self._lock:
                self.messages.append(doc)
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


@contextmanager
def running(sink: SmsGatewaySink, tls: TlsFiles | None = None, port: int = 0) -> Iterator[Endpoint]:
    """Serve the gateway; yields its base URL."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serve_asgi(sink, tls=tls, port=port, name="sms-gateway-sink"))
        yield Endpoint(url, tls.ca_bundle if tls else None)
