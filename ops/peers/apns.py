"""A local APNs provider-API peer: HTTP/2 over TLS, token auth checked, answers scripted per token.

Device tokens pick the answer by prefix, so one sink serves every test case:

| prefix  | answer                                                        |
|---------|---------------------------------------------------------------|
| gone    | 410 Unregistered                                              |
| bad     | 400 BadDeviceToken                                            |
| busy    | 429 TooManyRequests + Retry-After, the first `busy_failures` times, then 200 |
| boom    | 500 InternalServerError                                       |
| down    | 503 ServiceUnavailable + Retry-After                          |
| huge    | 413 PayloadTooLarge                                           |
| topic   | 400 DeviceTokenNotForTopic                                    |
| slow    | waits `slow_seconds`, then 200                                |
| other   | 200, recorded in `accepted`                                   |
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from ops.peers._runtime import (
    Clock,
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
    temp_tls,
)

MAX_PAYLOAD = 4096
TOKEN_MAX_AGE_S = 3600


@dataclass(frozen=True)
class ApnsPush:
    token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    size: int
    jwt_iat: int | None
    http_version: str


@dataclass
class ApnsSink:
    """ASGI app speaking the APNs provider API; verifies the ES256 JWT when given the key."""

    topic: str
    team_id: str
    key_id: str
    public_key: EllipticCurvePublicKey | None = None  # None: accept any bearer (demo mode)
    busy_failures: int = 1
    retry_after: str = "1"
    slow_seconds: float = 2.0
    clock: Clock = time.time
    accepted: list[ApnsPush] = field(default_factory=list)
    answers: list[tuple[str, int, str]] = field(default_factory=list)  # token, status, reason
    jwts_seen: list[str] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    _expired: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expire_seen_tokens(self) -> None:
        """Answer ExpiredProviderToken to every provider JWT seen so far (as APNs may anytime)."""
        with self._lock:
            self._expired.update(self.jwts_seen)

    def iats_seen(self) -> list[int]:
        """Distinct issued-at times of the provider JWTs seen, in order of first use."""
        out: list[int] = []
        for token in self.jwts_seen:
            iat = int(jwt.decode(token, options={"verify_signature": False}).get("iat", 0))
            if iat not in out:
                out.append(iat)
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive, limit=1 << 16)
        status, reason, extra = await self._answer(scope, body)
        headers = {"apns-id": extra.pop("apns-id", str(uuid.uuid4()))}
        headers.update(extra)
        with self._lock:
            self.answers.append((scope["path"].rsplit("/", 1)[-1], status, reason))
        if status == 200:
            await respond(send, 200, None, headers)
            return
        payload: dict[str, Any] = {"reason": reason}
        if status == 410:
            payload["timestamp"] = int(self.clock() * 1000)
        await respond(send, status, payload, headers)

    async def _answer(self, scope: Scope, body: bytes) -> tuple[int, str, dict[str, str]]:
        if scope["method"] != "POST":
            return 405, "MethodNotAllowed", {}
        if not scope["path"].startswith("/3/device/"):
            return 404, "BadPath", {}
        token = scope["path"][len("/3/device/") :]
        h = headers_of(scope)
        extra: dict[str, str] = {}
        if "apns-id" in h:
            try:
                uuid.UUID(h["apns-id"])
            except ValueError:
                return 400, "BadMessageId", extra
            extra["apns-id"] = h["apns-id"]

        auth_error = self._check_auth(h.get("authorization", ""))
        if auth_error:
            return 403, auth_error, extra
        header_error = self._check_headers(h)
        if header_error:
            return 400, header_error, extra
        if len(body) > MAX_PAYLOAD:
            return 413, "PayloadTooLarge", extra
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, "PayloadEmpty", extra
        if not isinstance(payload, dict) or "aps" not in payload:
            return 400, "PayloadEmpty", extra

        with self._lock:
            self.attempts[token] += 1
            attempt = self.attempts[token]
        if token.startswith("gone"):
            return 410, "Unregistered", extra
        if token.startswith("bad"):
            return 400, "BadDeviceToken", extra
        if token.startswith("busy") and attempt <= self.busy_failures:
            return 429, "TooManyRequests", {**extra, "retry-after": self.retry_after}
        if token.startswith("boom"):
            return 500, "InternalServerError", extra
        if token.startswith("down"):
            return 503, "ServiceUnavailable", {**extra, "retry-after": self.retry_after}
        if token.startswith("huge"):
            return 413, "PayloadTooLarge", extra
        if token.startswith("topic"):
            return 400, "DeviceTokenNotForTopic", extra
        if token.startswith("slow"):
            await asyncio.sleep(self.slow_seconds)

        iat = jwt.decode(h["authorization"][7:], options={"verify_signature": False}).get("iat")
        push = ApnsPush(token, h, payload, len(body), iat, scope.get("http_version", ""))
        with self._lock:
            self.accepted.append(push)
        return 200, "ok", extra

    def _check_auth(self, authorization: str) -> str | None:
        if not authorization.lower().startswith("bearer "):
            return "MissingProviderToken"
        token = authorization[7:]
        with self._lock:
            if token not in self.jwts_seen:
                self.jwts_seen.append(token)
            if token in self._expired:
                return "ExpiredProviderToken"
        try:
            header = jwt.get_unverified_header(token)
            if self.public_key is None:
                claims = jwt.decode(token, options={"verify_signature": False})
            else:
                claims = jwt.decode(
                    token,
                    self.public_key,
                    algorithms=["ES256"],
                    options={"verify_iat": False, "require": ["iat", "iss"]},
                )
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        identity = (header.get("kid"), claims.get("iss"))
        if self.public_key is not None and identity != (self.key_id, self.team_id):
            return "InvalidProviderToken"
        if self.clock() - int(claims["iat"]) > TOKEN_MAX_AGE_S:
            return "ExpiredProviderToken"
        return None

    def _check_headers(self, h: dict[str, str]) -> str | None:
        if "apns-topic" not in h:
            return "MissingTopic"
        if h["apns-topic"] != self.topic:
            return "TopicDisallowed"
        if h.get("apns-push-type", "alert") not in ("alert", "background"):
            return "InvalidPushType"
        if h.get("apns-priority", "10") not in ("5", "10"):
            return "BadPriority"
        if not h.get("apns-expiration", "0").isdigit():
            return "BadExpirationDate"
        if len(h.get("apns-collapse-id", "").encode()) > 64:
            return "BadCollapseId"
        return None


@contextmanager
def running(sink: ApnsSink, tls: TlsFiles | None = None, port: int = 0) -> Iterator[Endpoint]:
    """Serve the sink over HTTP/2 + TLS (a fresh self-signed cert unless tls is given)."""
    with contextlib.ExitStack() as stack:
        files = tls or stack.enter_context(temp_tls())
        url = stack.enter_context(serve_asgi(sink, tls=files, port=port, name="apns-sink"))
        yield Endpoint(url, files.ca_bundle)
