"""A local FCM HTTP v1 peer: the OAuth2 token endpoint and messages:send.

The token endpoint checks the RS256 service-account grant and hands out short opaque tokens;
messages:send checks the bearer and answers per registration token by prefix:

| prefix | answer                                                             |
|--------|--------------------------------------------------------------------|
| gone   | 404 NOT_FOUND, errorCode UNREGISTERED                              |
| bad    | 400 INVALID_ARGUMENT with a field violation on message.token       |
| busy   | 429 RESOURCE_EXHAUSTED + Retry-After the first `busy_failures` times |
| boom   | 500 INTERNAL                                                       |
| down   | 503 UNAVAILABLE + Retry-After                                      |
| denied | 403 PERMISSION_DENIED, errorCode SENDER_ID_MISMATCH                |
| slow   | waits `slow_seconds`, then 200                                     |

`quota` (messages per `quota_window_s`) makes every send beyond it a 429 with Retry-After
until the window rolls over, like the per-project quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

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
)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def _error(code: int, status: str, message: str, error_code: str | None = None, **extra: Any):
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR, "errorCode": error_code})
    if extra.get("field"):
        details.append(
            {
                "@type": BAD_REQUEST,
                "fieldViolations": [{"field": extra["field"], "description": message}],
            }
        )
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


@dataclass(frozen=True)
class FcmMessage:
    project: str
    message: dict[str, Any]

    @property
    def target(self) -> str:
        """The registration token or 'topic:<name>'."""
        m = self.message
        return m["token"] if "token" in m else f"topic:{m.get('topic')}"


@dataclass
class FcmSink:
    """ASGI app for the token endpoint (POST /token) and POST /v1/projects/<id>/messages:send."""

    project_id: str
    client_email: str
    public_key: RSAPublicKey | None = None  # None: accept any grant (demo mode)
    expires_in: int = 3600
    busy_failures: int = 1
    retry_after: str = "1"
    slow_seconds: float = 2.0
    quota: int | None = None
    quota_window_s: float = 60.0
    token_failures: int = 0  # answer 503 to the first N token requests
    clock: Clock = time.time
    accepted: list[FcmMessage] = field(default_factory=list)
    answers: list[tuple[str, int, str]] = field(default_factory=list)
    grants: list[dict[str, Any]] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    _tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry
    _window: tuple[float, int] = (0.0, 0)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke_access_tokens(self) -> None:
        """Forget every issued access token, so the next send gets 401."""
        with self._lock:
            self._tokens.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        path = scope["path"]
        if scope["method"] == "POST" and path.endswith("/token"):
            status, doc, headers = self._token(body)
        elif scope["method"] == "POST" and path.endswith("/messages:send"):
            status, doc, headers = await self._send(path, headers_of(scope), body)
        else:
            status, doc, headers = 404, _error(404, "NOT_FOUND", "no such method"), {}
        await respond(send, status, doc, headers)

    def _token(self, body: bytes) -> tuple[int, dict, dict[str, str]]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self._lock:
            if self.token_failures > 0:
                self.token_failures -= 1
                return 503, {"error": "backend_error"}, {"retry-after": self.retry_after}
        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return 400, {"error": "unsupported_grant_type"}, {}
        try:
            if self.public_key is None:
                claims = jwt.decode(form["assertion"], options={"verify_signature": False})
            else:
                claims = jwt.decode(
                    form["assertion"],
                    self.public_key,
                    algorithms=["RS256"],
                    options={"verify_aud": False, "verify_iat": False, "verify_exp": False},
                )
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}, {}
        now = self.clock()
        if (
            (self.public_key is not None and claims.get("iss") != self.client_email)
            or "firebase.messaging" not in str(claims.get("scope", ""))
            or not str(claims.get("aud", "")).endswith("/token")
            or not (claims.get("iat", 0) - 60 <= now <= claims.get("exp", 0))
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad claims"}, {}
        token = "ya29." + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = now + self.expires_in
            self.grants.append(claims)
        return (
            200,
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"},
            {},
        )

    async def _send(
        self, path: str, h: dict[str, str], body: bytes
    ) -> tuple[int, dict, dict[str, str]]:
        project = path.split("/")[3] if path.count("/") >= 4 else ""
        auth = h.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        now = self.clock()
        with self._lock:
            valid = self._tokens.get(token, 0.0) > now
        if not valid:
            return 401, _error(401, "UNAUTHENTICATED", "Request had invalid credentials."), {}
        if project != self.project_id:
            return 403, _error(403, "PERMISSION_DENIED", "Wrong project", "SENDER_ID_MISMATCH"), {}
        try:
            message = json.loads(body)["message"]
        except (ValueError, KeyError, TypeError):
            return 400, _error(400, "INVALID_ARGUMENT", "Invalid JSON payload"), {}
        if ("token" in message) == ("topic" in message):
            return 400, _error(400, "INVALID_ARGUMENT", "Exactly one target", field="message"), {}
        if message.get("android", {}).get("priority") != "high":
            return 400, _error(400, "INVALID_ARGUMENT", "priority", field="message.android"), {}
        if self.quota is not None:
            with self._lock:
                start, used = self._window
                if now - start >= self.quota_window_s:
                    start, used = now, 0
                used += 1
                self._window = (start, used)
            if used > self.quota:
                left = max(1, int(start + self.quota_window_s - now))
                return (
                    429,
                    _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"),
                    {"retry-after": str(left)},
                )
        target = message.get("token") or f"topic:{message.get('topic')}"
        with self._lock:
            self.attempts[target] += 1
            attempt = self.attempts[target]
        answer = self._scripted(target, attempt)
        if answer is not None:
            with self._lock:
                self.answers.append((target, answer[0], answer[1]["error"]["status"]))
            return answer
        if target.startswith("slow"):
            await asyncio.sleep(self.slow_seconds)
        with self._lock:
            self.accepted.append(FcmMessage(project, message))
            self.answers.append((target, 200, "OK"))
        name = f"projects/{project}/messages/{secrets.token_hex(8)}"
        return 200, {"name": name}, {}

    def _scripted(self, target: str, attempt: int) -> tuple[int, dict, dict[str, str]] | None:
        if target.startswith("gone"):
            return (
                404,
                _error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
                {},
            )
        if target.startswith("bad"):
            msg = "The registration token is not a valid FCM registration token"
            err = _error(400, "INVALID_ARGUMENT", msg, "INVALID_ARGUMENT", field="message.token")
            return 400, err, {}
        if target.startswith("busy") and attempt <= self.busy_failures:
            err = _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED")
            return 429, err, {"retry-after": self.retry_after}
        if target.startswith("boom"):
            return 500, _error(500, "INTERNAL", "Internal error", "INTERNAL"), {}
        if target.startswith("down"):
            err = _error(503, "UNAVAILABLE", "Unavailable", "UNAVAILABLE")
            return 503, err, {"retry-after": self.retry_after}
        if target.startswith("denied"):
            err = _error(403, "PERMISSION_DENIED", "Mismatch", "SENDER_ID_MISMATCH")
            return 403, err, {}
        return None


@contextmanager
def running(sink: FcmSink, tls: TlsFiles | None = None, port: int = 0) -> Iterator[Endpoint]:
    """Serve the sink (plain HTTP unless tls is given); token_uri is f'{url}/token'."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serve_asgi(sink, tls=tls, port=port, name="fcm-sink"))
        yield Endpoint(url, tls.ca_bundle if tls else None)
