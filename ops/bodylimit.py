"""Request bodies bounded before anything reads them: by Content-Length, then while streaming.

Every request body is checked against its route's limit before authentication or parsing:
a declared Content-Length over it is refused at once (413), and a chunked or lying body is cut
off as soon as the bytes received pass it, so a 200 MB anonymous upload never grows the
process. Limits are by path prefix or "*" pattern (the longest matching entry wins).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from starlette.exceptions import HTTPException

Limits = Sequence[tuple[str, int]]  # (path prefix, max body bytes)


class BodyTooLarge(HTTPException):
    """Raised inside the app's receive when the streamed body passes the limit (an HTTP 413,
    so the framework answers it like any refusal; the middleware answers it otherwise)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """Pure ASGI middleware enforcing per-prefix body limits while the body streams in."""

    def __init__(self, app: Any, limits: Callable[[], Limits], default: Callable[[], int]):
        self.app = app
        self._limits = limits
        self._default = default

    def limit_for(self, path: str) -> int:
        best, size = "", self._default()
        for prefix, limit in self._limits():
            # A "*" entry is a pattern for the whole path ("/api/v1/cases/*/photos").
            hit = fnmatchcase(path, prefix) if "*" in prefix else path.startswith(prefix)
            if hit and len(prefix) > len(best):
                best, size = prefix, limit
        return size

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"request body is larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
