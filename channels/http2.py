"""HTTP/2 requests for the push providers on libcurl's multi interface (pycurl), driven by asyncio.

Why libcurl: HTTP/2 framing, HPACK, flow control, the peer's MAX_CONCURRENT_STREAMS, GOAWAY and
REFUSED_STREAM handling all run in C (nghttp2), leaving Python one small call per request. On
the same nginx sink and in the same run, this costs about a quarter of the CPU per push of the
client it replaces (asyncio driving the pure-Python `h2` state machine), and less than the Node
library Parse Server uses (`@parse/node-apn`): docs/PERFORMANCE.md, "Issue 16". pycurl ships
manylinux wheels with libcurl, OpenSSL and nghttp2 inside, so nothing is built on install.

The pool is one `CurlMulti` per event loop thread: libcurl opens at most `connections` TLS
connections to the origin and multiplexes up to `streams_per_connection` streams on each
(PIPEWAIT: a new request waits for a stream on an open connection rather than opening one of
its own). Sockets and timers are handed to the asyncio loop through libcurl's socket and timer
callbacks, so requests from every coroutine on the loop share the connections.

Failures: no answer within `timeout_s` raises `TimeoutError`; anything below HTTP (connect, TLS,
a reset stream, a lost connection) raises `TransportError`, for the caller to retry. Requests the
peer never processed (streams beyond a GOAWAY's last stream id, REFUSED_STREAM) are re-sent by
libcurl itself on a fresh connection before either is raised.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

import certifi
import pycurl

from ops.platform.channel_settings import HttpTransportSettings

# libcurl's errors a push can meet, named for outcome reasons ("transport_couldnt_connect").
_ERROR_NAMES = {
    pycurl.E_COULDNT_RESOLVE_HOST: "couldnt_resolve_host",
    pycurl.E_COULDNT_CONNECT: "couldnt_connect",
    pycurl.E_HTTP2: "http2",
    92: "http2_stream",  # CURLE_HTTP2_STREAM: the peer reset the stream
    pycurl.E_SSL_CONNECT_ERROR: "tls_connect_error",
    pycurl.E_PEER_FAILED_VERIFICATION: "tls_peer_failed_verification",
    pycurl.E_SSL_CERTPROBLEM: "tls_certificate_problem",
    pycurl.E_GOT_NOTHING: "got_nothing",
    pycurl.E_SEND_ERROR: "send_error",
    pycurl.E_RECV_ERROR: "recv_error",
}
# Failures that, on a reused connection and before any answer, mean the peer had closed it
# while it sat idle. libcurl re-sends such a request itself only when the failure is a read.
_STALE = frozenset({pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR, pycurl.E_HTTP2})


class TransportError(Exception):
    """The request failed below HTTP (connection, TLS, protocol, reset): it may be retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unprocessed(TransportError):
    """A reused connection failed before any answer: the peer had closed it while idle."""


class Response:
    """A provider's answer; its header fields are parsed only when asked for."""

    __slots__ = ("status", "body", "_lines", "_headers")

    def __init__(self, status: int, lines: list[bytes], body: bytes) -> None:
        self.status = status
        self.body = body
        self._lines = lines
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The final answer's header fields, lower-case names (informational answers dropped)."""
        if self._headers is None:
            fields: dict[str, str] = {}
            for line in self._lines:
                if line.startswith(b"HTTP/"):
                    fields.clear()  # a new response head begins
                    continue
                name, sep, value = line.partition(b":")
                if sep:
                    fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            self._headers = fields
        return self._headers


class _Transfer:
    """One request in flight: its easy handle, the caller's future and the answer's parts."""

    __slots__ = ("easy", "future", "chunks", "lines")

    def __init__(self, easy: pycurl.Curl, future: asyncio.Future[Response]) -> None:
        self.easy = easy
        self.future = future
        self.chunks: list[bytes] = []
        self.lines: list[bytes] = []


class _Multi:
    """A CurlMulti bound to one event loop: libcurl's sockets and timer run on that loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: int, streams: int) -> None:
        self.loop = loop
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, connections)
        self.multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, streams)
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._set_timer)
        self.transfers: dict[pycurl.Curl, _Transfer] = {}
        self.spare: list[pycurl.Curl] = []
        # Requests beyond the streams we may open wait here, not in libcurl, whose timeout
        # would count the wait: `timeout_s` is for the provider's answer.
        self.limit = connections * streams
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.Handle | None = None
        self._deadline = 0.0  # loop time the timer is due (uvloop's handles do not say)
        self._watched: set[int] = set()

    async def room(self) -> None:
        """Wait until a stream is free for one more request."""
        while len(self.transfers) >= self.limit:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the slot we were woken for
                raise

    def start(self, transfer: _Transfer) -> None:
        """Hand the request to libcurl (after `room`, with nothing awaited in between)."""
        self.transfers[transfer.easy] = transfer
        self.multi.add_handle(transfer.easy)  # libcurl asks for a 0 ms timer: kicked next turn

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def cancel(self, transfer: _Transfer) -> None:
        """Abandon a request (its caller was cancelled); the handle may be used again."""
        if self.transfers.pop(transfer.easy, None) is not None:
            self.multi.remove_handle(transfer.easy)
            self.spare.append(transfer.easy)
            self._wake()

    def close(self) -> None:
        for transfer in list(self.transfers.values()):
            self.multi.remove_handle(transfer.easy)
            if not transfer.future.done():
                transfer.future.set_exception(TransportError("transport_closed"))
        self.transfers.clear()
        if self._timer is not None:
            self._timer.cancel()
        for fd in self._watched:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        self._watched.clear()
        self.multi.close()
        for easy in self.spare:
            easy.close()
        self.spare.clear()

    # -- libcurl callbacks (called from inside socket_action / add_handle) --

    def _watch(self, what: int, fd: int, _multi: object, _data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            self._watched.discard(fd)
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
            return
        self._watched.add(fd)
        if what & pycurl.POLL_IN:
            self.loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        else:
            self.loop.remove_reader(fd)
        if what & pycurl.POLL_OUT:
            self.loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        else:
            self.loop.remove_writer(fd)

    def _set_timer(self, ms: int) -> None:
        if ms < 0:  # no timer wanted
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        when = self.loop.time() + ms / 1000
        # libcurl re-arms its timer on every request added and every socket event; a timer
        # already due within a millisecond of the new deadline serves (libcurl tolerates an
        # early or slightly late call), which saves a timer handle per push.
        if self._timer is not None:
            if abs(self._deadline - when) < 0.001:
                return
            self._timer.cancel()
        self._deadline = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None  # fired: whatever libcurl asks for next needs a new one
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    # -- driving libcurl --

    def _act(self, fd: int, events: int) -> None:
        while self.multi.socket_action(fd, events)[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        self._collect()

    def _collect(self) -> None:
        while True:
            queued, succeeded, failed = self.multi.info_read()
            for easy in succeeded:
                self._done(easy, None)
            for easy, code, _message in failed:
                self._done(easy, code)
            if not queued:
                return

    def _done(self, easy: pycurl.Curl, code: int | None) -> None:
        self.multi.remove_handle(easy)
        self.spare.append(easy)
        transfer = self.transfers.pop(easy, None)
        self._wake()
        if transfer is None or transfer.future.done():
            return
        if code is None:
            status = easy.getinfo(pycurl.RESPONSE_CODE)
            body = b"".join(transfer.chunks)
            transfer.future.set_result(Response(status, transfer.lines, body))
        elif code == pycurl.E_OPERATION_TIMEDOUT:
            transfer.future.set_exception(TimeoutError())
        else:
            reason = f"transport_{_ERROR_NAMES.get(code, f'curl_{code}')}"
            reused = easy.getinfo(pycurl.NUM_CONNECTS) == 0
            stale = code in _STALE and reused and not transfer.lines
            transfer.future.set_exception(Unprocessed(reason) if stale else TransportError(reason))


class Http2Pool:
    """POSTs to one https origin over at most `connections` HTTP/2 connections."""

    def __init__(
        self,
        base_url: str,
        transport: HttpTransportSettings,
        *,
        connections: int,
        streams_per_connection: int,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"HTTP/2 pool needs an https:// base URL, got {base_url!r}")
        self._base = base_url.rstrip("/")
        self._transport = transport
        self._connections = connections
        self._streams = streams_per_connection
        self._multi: _Multi | None = None

    async def post(self, path: str, fields: list[bytes], body: bytes) -> Response:
        """POST body to path with header fields (b"name: value" lines); raises TransportError
        or TimeoutError when there is no answer."""
        url = self._base + path
        try:
            return await self._send(url, fields, body)
        except Unprocessed:
            return await self._send(url, fields, body)  # once, on a fresh connection

    async def _send(self, url: str, fields: list[bytes], body: bytes) -> Response:
        multi = self._multi
        if multi is None or multi.loop is not asyncio.get_running_loop():
            multi = self._bind()
        if len(multi.transfers) >= multi.limit:
            await multi.room()
        easy = multi.spare.pop() if multi.spare else self._new_easy()
        future: asyncio.Future[Response] = multi.loop.create_future()
        transfer = _Transfer(easy, future)
        easy.setopt(pycurl.URL, url)
        easy.setopt(pycurl.HTTPHEADER, fields)
        easy.setopt(pycurl.POSTFIELDS, body)
        easy.setopt(pycurl.WRITEFUNCTION, transfer.chunks.append)
        easy.setopt(pycurl.HEADERFUNCTION, transfer.lines.append)
        multi.start(transfer)
        try:
            return await future
        except asyncio.CancelledError:
            multi.cancel(transfer)  # the caller gave up: free the stream now
            raise

    def _bind(self) -> _Multi:
        """A multi handle for this loop (the pool was unused, or last used on another loop)."""
        if self._multi is not None and not self._multi.loop.is_closed():
            self._multi.close()
        self._multi = _Multi(asyncio.get_running_loop(), self._connections, self._streams)
        return self._multi

    def _new_easy(self) -> pycurl.Curl:
        t = self._transport
        easy = pycurl.Curl()
        easy.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
        easy.setopt(pycurl.PIPEWAIT, 1)
        easy.setopt(pycurl.POST, 1)
        easy.setopt(pycurl.NOSIGNAL, 1)
        easy.setopt(pycurl.USERAGENT, "reunite")
        easy.setopt(pycurl.TIMEOUT_MS, int(t.timeout_s * 1000))
        easy.setopt(pycurl.CONNECTTIMEOUT_MS, int(t.connect_timeout_s * 1000))
        easy.setopt(pycurl.SSLVERSION, pycurl.SSLVERSION_TLSv1_2)
        if not t.verify_tls:
            easy.setopt(pycurl.SSL_VERIFYPEER, 0)
            easy.setopt(pycurl.SSL_VERIFYHOST, 0)
        else:
            # The wheel's libcurl has no system store of its own: certifi's roots, as httpx uses.
            easy.setopt(pycurl.CAINFO, str(t.ca_bundle) if t.ca_bundle else certifi.where())
        return easy

    async def aclose(self) -> None:
        """Close every connection; requests still in flight fail as transport errors."""
        if self._multi is not None:
            self._multi.close()
            self._multi = None
