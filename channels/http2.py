"""A small HTTP/2 client on asyncio + `h2`: a few TLS connections, many concurrent streams each.

Why not httpx: its HTTP/2 path (request objects, header normalisation, per-stream locks and
events in httpcore) costs about 1 ms of CPU per request, which capped APNs fan-out at ~1.2k
pushes/s per machine. This client keeps only what a push provider needs: one protocol object
per connection driving the `h2` state machine, a future per stream, writes coalesced per loop
iteration, stream and connection flow control, the peer's MAX_CONCURRENT_STREAMS honoured, and
reconnection after GOAWAY or a lost connection. Requests the peer says it never processed
(beyond GOAWAY's last stream id, or REFUSED_STREAM) are re-sent once on a fresh connection;
every other failure is raised as `TransportError` or `TimeoutError` for the caller to retry.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ops.platform.channel_settings import HttpTransportSettings

# Validation and normalisation walk every header in Python; our headers are built lower-case
# and well-formed here, and the answers we read are three headers at most.
_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)
# Answers are tiny, so a large receive window only saves WINDOW_UPDATE round trips.
_RECEIVE_WINDOW = 1 << 24


class _H2(h2.connection.H2Connection):
    """h2's connection, counting open streams in O(1) instead of scanning them per new stream."""

    in_flight = 0  # kept by _Connection: streams opened and not yet ended, reset or expired

    @property
    def open_outbound_streams(self) -> int:
        """What h2 checks against the peer's MAX_CONCURRENT_STREAMS before opening a stream."""
        return self.in_flight

    def forget_closed_streams(self) -> None:
        """Drop closed streams from h2's table (its own scan, which did this, is bypassed)."""
        h2.connection.H2Connection.open_outbound_streams.fget(self)  # type: ignore[attr-defined]


class TransportError(Exception):
    """The request failed below HTTP (connection, TLS, protocol, reset): it may be retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unprocessed(TransportError):
    """The peer did not process the request (GOAWAY, REFUSED_STREAM): safe to re-send at once."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def ssl_context(transport: HttpTransportSettings) -> ssl.SSLContext:
    """A client TLS context offering only h2 by ALPN, trusting the configured CAs."""
    if not transport.verify_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif transport.ca_bundle is not None:
        ctx = ssl.create_default_context(cafile=str(transport.ca_bundle))
    else:
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    return ctx


class _Stream:
    __slots__ = ("future", "timer", "status", "headers", "body")

    def __init__(self, future: asyncio.Future[Response], timer: asyncio.TimerHandle) -> None:
        self.future = future
        self.timer = timer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: sends requests as streams and resolves each stream's future."""

    def __init__(self, max_streams: int, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._h2 = _H2(config=_CONFIG)
        self._ended = 0
        self._transport: asyncio.Transport | None = None
        self._max_streams = max_streams
        self._limit = 1  # until the peer's SETTINGS arrive (APNs starts low, then raises it)
        self._timeout_s = timeout_s
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, bytes] = {}  # request bodies waiting for flow-control window
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._flush_pending = False
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self.usable = True  # False after GOAWAY or loss: no new streams

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        tls = transport.get_extra_info("ssl_object")
        if tls is not None and tls.selected_alpn_protocol() != "h2":
            self._fail_ready(TransportError("transport_no_h2"))
            transport.close()
            return
        self._h2.initiate_connection()  # the preface must go first, before any other frame
        self._h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _RECEIVE_WINDOW})
        self._h2.increment_flow_control_window(_RECEIVE_WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._abort(TransportError(f"transport_{type(exc).__name__}"))
            return
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
                    stream.status = int(headers.pop(":status", "0"))
                    stream.headers = headers
            elif isinstance(event, h2.events.DataReceived):
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                stream = self._finish(event.stream_id)
                if stream is not None and not stream.future.done():
                    stream.future.set_result(Response(stream.status, stream.headers, stream.body))
            elif isinstance(event, h2.events.StreamReset):
                if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                    error: TransportError = Unprocessed("transport_refused_stream")
                else:
                    error = TransportError(f"transport_reset_{int(event.error_code)}")
                self._fail(event.stream_id, error)
            elif isinstance(event, h2.events.WindowUpdated):
                self._send_blocked()
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                peer = self._h2.remote_settings.max_concurrent_streams
                self._limit = max(1, min(self._max_streams, peer))
                if not self.ready.done():
                    self.ready.set_result(None)
                self._wake(len(self._waiters))
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._goaway(event.last_stream_id)
        self._flush()

    def eof_received(self) -> None:
        """The peer closed its side: no new streams here."""
        self.usable = False

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"transport_{type(exc).__name__}" if exc else "transport_connection_closed"
        self._abort(TransportError(reason))

    # -- requests --

    async def request(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        """Send one request on a new stream and wait for the whole answer."""
        while self.usable and len(self._streams) >= self._limit:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake(1)  # pass on the slot we were woken for
                raise
        if not self.usable:
            raise Unprocessed("transport_connection_closed")
        stream_id = self._h2.get_next_available_stream_id()
        try:
            self._h2.send_headers(stream_id, headers, end_stream=not body)
            if body:
                rest = self._send_body(stream_id, body)
                if rest:
                    self._blocked[stream_id] = rest
        except h2.exceptions.H2Error as exc:
            raise TransportError(f"transport_{type(exc).__name__}") from exc
        future: asyncio.Future[Response] = self._loop.create_future()
        timer = self._loop.call_later(self._timeout_s, self._expire, stream_id)
        self._streams[stream_id] = _Stream(future, timer)
        self._h2.in_flight = len(self._streams)
        self._schedule_flush()
        try:
            return await future
        except asyncio.CancelledError:
            if stream_id in self._streams:  # the caller gave up: free the slot now
                self._reset(stream_id)
                self._finish(stream_id)
            raise

    def idle_and_readable(self) -> bool:
        """No stream open, yet the peer sent something: likely GOAWAY or EOF of an idle close."""
        if self._streams or self._transport is None:
            return False
        sock = self._transport.get_extra_info("socket")
        return sock is not None and bool(select.select([sock], [], [], 0)[0])

    def close(self, reason: str = "transport_closed") -> None:
        """Close the connection; requests still in flight fail as transport errors."""
        self.usable = False
        if self._transport is not None:
            self._transport.close()
        self._abort(TransportError(reason))

    # -- internals --

    def _send_body(self, stream_id: int, data: bytes) -> bytes:
        """Send as much of data as the flow-control windows allow; returns the rest."""
        while data:
            window = self._h2.local_flow_control_window(stream_id)
            if window <= 0:
                break
            n = min(window, self._h2.max_outbound_frame_size, len(data))
            self._h2.send_data(stream_id, data[:n], end_stream=n == len(data))
            data = data[n:]
        return data

    def _send_blocked(self) -> None:
        for stream_id in list(self._blocked):
            if self._h2.outbound_flow_control_window <= 0:
                break
            try:
                rest = self._send_body(stream_id, self._blocked[stream_id])
            except h2.exceptions.StreamClosedError:
                rest = b""
            if rest:
                self._blocked[stream_id] = rest
            else:
                del self._blocked[stream_id]

    def _finish(self, stream_id: int) -> _Stream | None:
        """Forget a stream and free its slot; returns it unless it was already finished."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return None
        stream.timer.cancel()
        if self._blocked.pop(stream_id, None) is not None:
            self._reset(stream_id)  # answered before we finished sending: end our half too
        self._h2.in_flight = len(self._streams)
        self._ended += 1
        if self._ended % 1024 == 0:
            self._h2.forget_closed_streams()
        self._wake(1)
        return stream

    def _fail(self, stream_id: int, error: BaseException) -> None:
        stream = self._finish(stream_id)
        if stream is not None and not stream.future.done():
            stream.future.set_exception(error)

    def _expire(self, stream_id: int) -> None:
        if stream_id in self._streams:
            self._reset(stream_id)
            self._fail(stream_id, TimeoutError())

    def _reset(self, stream_id: int) -> None:
        try:
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            return  # already closed on the wire: nothing to cancel
        self._schedule_flush()

    def _goaway(self, last_stream_id: int | None) -> None:
        # h2 accepts no frame after GOAWAY, so the answers to streams the peer kept can never be
        # read: those fail as plain transport errors (retried later: they may have been pushed).
        last = last_stream_id if last_stream_id is not None else 2**31
        for stream_id in list(self._streams):
            if stream_id > last:
                self._fail(stream_id, Unprocessed("transport_goaway"))
        self.close("transport_goaway")

    def _abort(self, error: TransportError) -> None:
        self.usable = False
        self._fail_ready(error)
        for stream_id in list(self._streams):
            self._fail(stream_id, error)
        self._wake(len(self._waiters))

    def _fail_ready(self, error: TransportError) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved here: nobody may be waiting any more

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    def _schedule_flush(self) -> None:
        # One write per loop iteration for all the streams opened in it, not one per request.
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


class Http2Pool:
    """Requests to one https origin over `connections` HTTP/2 connections, used round robin."""

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
        self._host = url.hostname
        self._port = url.port or 443
        self._authority = url.netloc.encode()
        self._prefix = url.path.rstrip("/")
        self._ssl = ssl_context(transport)
        self._timeout_s = transport.timeout_s
        self._connect_timeout_s = transport.connect_timeout_s
        self._streams = streams_per_connection
        self._slots: list[_Connection | None] = [None] * connections
        self._connecting: list[asyncio.Future[_Connection] | None] = [None] * connections
        self._next = 0

    async def post(self, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        """POST body to path; raises TransportError or TimeoutError when there is no answer."""
        request = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", self._authority),
            (b":path", (self._prefix + path).encode()),
            *headers,
        ]
        try:
            return await (await self._connection()).request(request, body)
        except Unprocessed:
            # The peer guarantees it never acted on it: one immediate re-send, fresh connection.
            return await (await self._connection()).request(request, body)

    async def _connection(self) -> _Connection:
        i = self._next
        self._next = (i + 1) % len(self._slots)
        conn = self._slots[i]
        if conn is not None and conn.usable and conn.idle_and_readable():
            # Between batches the loop does not run, so a peer's close of an idle connection
            # is still unread. Let the loop read it first: a ready reader runs only after the
            # task that yielded, hence two passes.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        if conn is not None and conn.usable:
            return conn
        pending = self._connecting[i]
        if pending is None:
            pending = asyncio.ensure_future(self._open())
            self._connecting[i] = pending
            pending.add_done_callback(lambda f, i=i: self._opened(i, f))
        # shield: one caller's cancellation must not abort the connect the others share.
        return await asyncio.shield(pending)

    def _opened(self, i: int, future: asyncio.Future[_Connection]) -> None:
        self._connecting[i] = None
        if not future.cancelled() and future.exception() is None:
            self._slots[i] = future.result()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._streams, self._timeout_s),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host,
                )
                await conn.ready  # the peer's SETTINGS: its stream limit before we use it
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise TransportError(f"transport_{type(exc).__name__}") from exc
            raise
        return conn

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in self._slots:
            if conn is not None:
                conn.close()
        self._slots = [None] * len(self._slots)
