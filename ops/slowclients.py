"""Deadlines for slow clients in the API server itself, not only in the proxy in front.

uvicorn bounds the idle time between requests (keep-alive) but not the time a client takes to
send one: a client dribbling a header byte every few seconds ("slowloris") holds its
connection, and 400 of them were still open after 90 s. This protocol is uvicorn's own h11
protocol with two deadlines added:

- the request line and headers must arrive within `header_timeout` of their first byte (or of
  the connection, for the first request): a total, so dribbling does not extend it;
- while the client sends a body, a gap longer than `body_idle_timeout` closes the connection.
  Time the server itself stops reading (flow control) is never counted against the client.

nginx in the production layout applies the same limits (ops/deploy/nginx.conf); these hold
when the API is reached directly (development, `reunite serve`, a misrouted port).
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("reunite.http")


class SlowClientGuard(H11Protocol):
    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm(self.header_timeout)  # the first bytes of a kept-alive connection's next
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm(self.body_idle_timeout)  # headers done; each chunk restarts the gap
        elif state is not h11.IDLE:
            self._disarm()  # the whole request is in (or the connection is ending)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            self._arm(seconds)  # the server is not reading: not the client's delay
            return
        phase = "headers" if self.conn.their_state is h11.IDLE else "body"
        log.info("closed a slow client connection", extra={"phase": phase, "after_s": seconds})
        self.transport.close()


def guard(header_timeout: float, body_idle_timeout: float) -> type[SlowClientGuard]:
    """The protocol class for `uvicorn.run(http=...)` with these deadlines."""
    return type(
        "SlowClientGuard",
        (SlowClientGuard,),
        {"header_timeout": header_timeout, "body_idle_timeout": body_idle_timeout},
    )
