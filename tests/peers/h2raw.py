"""A raw HTTP/2 server over TLS that misbehaves on cue: GOAWAY mid-flight, REFUSED_STREAM, resets.

The APNs sink (ops/peers/apns.py) runs under hypercorn, which never sends these frames on
purpose; the push client's handling of them is tested against this peer instead. It answers
every request it processes with 200 and records the request's path, so a test can tell which
requests the server acted on, and how many streams were ever open at once.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ops.peers._runtime import LoopThread, TlsFiles


@dataclass
class Script:
    """What the peer does: each field counts requests across all connections, from 1."""

    max_streams: int = 100
    goaway_at: int | None = None  # the n-th request: answer up to it, GOAWAY, close the conn
    refuse: frozenset[int] = frozenset()  # these requests get RST_STREAM(REFUSED_STREAM)
    reset: frozenset[int] = frozenset()  # these get RST_STREAM(INTERNAL_ERROR)
    hold_s: float = 0.05  # answers wait this long, so streams overlap


@dataclass
class Record:
    processed: list[str] = field(default_factory=list)  # paths answered 200
    received: int = 0
    connections: int = 0
    peak_open: int = 0


class _Conn:
    def __init__(self, script: Script, record: Record, writer: asyncio.StreamWriter) -> None:
        self.script = script
        self.record = record
        self.writer = writer
        config = h2.config.H2Configuration(client_side=False)
        self.h2 = h2.connection.H2Connection(config)
        # In the first SETTINGS frame: a client may open streams before it sees a later one.
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: script.max_streams},
        )
        self.paths: dict[int, str] = {}
        self.open = 0
        self.closing = False

    def start(self) -> None:
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def receive(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self.paths[event.stream_id] = dict(event.headers)[b":path"].decode()
                self.open += 1
                self.record.peak_open = max(self.record.peak_open, self.open)
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.request_done(event.stream_id)
        self.flush()

    def request_done(self, stream_id: int) -> None:
        if self.closing:
            return
        self.record.received += 1
        n = self.record.received
        if n in self.script.refuse or n in self.script.reset:
            code = h2.errors.ErrorCodes.REFUSED_STREAM
            if n in self.script.reset:
                code = h2.errors.ErrorCodes.INTERNAL_ERROR
            self.h2.reset_stream(stream_id, code)
            self.open -= 1
            return
        if self.script.goaway_at is not None and n == self.script.goaway_at:
            # This request and every lower stream are answered; later streams never will be.
            self.closing = True
            asyncio.get_running_loop().call_later(self.script.hold_s, self.go_away, stream_id)
            return
        asyncio.get_running_loop().call_later(self.script.hold_s, self.answer, stream_id)

    def answer(self, stream_id: int) -> None:
        try:
            self.h2.send_headers(stream_id, [(":status", "200")], end_stream=True)
        except h2.exceptions.H2Error:
            return  # the client reset it meanwhile, or the connection ended
        self.record.processed.append(self.paths[stream_id])
        self.open -= 1
        self.flush()

    def go_away(self, last_stream_id: int) -> None:
        for stream_id in sorted(self.paths):
            if stream_id <= last_stream_id:
                self.answer(stream_id)
        self.h2.close_connection(last_stream_id=last_stream_id)
        self.flush()
        self.writer.close()


@contextmanager
def running(tls: TlsFiles, script: Script) -> Iterator[tuple[str, Record]]:
    """Serve script on a loopback port; yields (base URL, what the peer saw)."""
    record = Record()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls.cert, tls.key)
    ctx.set_alpn_protocols(["h2"])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record.connections += 1
        conn = _Conn(script, record, writer)
        conn.start()
        try:
            while not writer.is_closing():
                data = await reader.read(65536)
                if not data:
                    break
                conn.receive(data)
                await writer.drain()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()

    thread = LoopThread("h2raw")
    thread.start()
    server = thread.call(asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx))
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}", record
    finally:

        async def stop() -> None:
            server.close()

        thread.call(stop())
        thread.stop()
