"""The HTTP/2 client's connection against an in-memory h2 server: GOAWAY, resets, flow control."""

from __future__ import annotations

import asyncio
import socket

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from channels.http2 import TransportError, Unprocessed, _Connection

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"https"),
    (b":authority", b"peer"),
    (b":path", b"/3/device/x"),
]


class FakeTransport(asyncio.Transport):
    """Collects what the client writes; no TLS, so no ALPN check."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.socket: socket.socket | None = None

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return self.socket if name == "socket" else default


class Peer:
    """A server-side h2 connection wired to a client _Connection through FakeTransport."""

    def __init__(self, window: int = 65535, max_streams: int = 100) -> None:
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            },
        )
        self.h2.initiate_connection()
        self.transport = FakeTransport()
        self.client = _Connection(max_streams=1000, timeout_s=5.0)
        self.client.connection_made(self.transport)
        self.bodies: dict[int, bytes] = {}
        self.ended: list[int] = []

    async def exchange(self) -> list[h2.events.Event]:
        """Let the client flush, deliver its bytes to the server, and the server's back."""
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        data, self.transport.written = bytes(self.transport.written), bytearray()
        events = self.h2.receive_data(data) if data else []
        for e in events:
            if isinstance(e, h2.events.DataReceived):
                self.bodies[e.stream_id] = self.bodies.get(e.stream_id, b"") + e.data
                self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                self.ended.append(e.stream_id)
        self.deliver()
        return events

    def deliver(self) -> None:
        out = self.h2.data_to_send()
        if out:
            self.client.data_received(out)

    def answer(self, stream_id: int, status: int = 200) -> None:
        headers = [(":status", str(status)), ("apns-id", f"id-{stream_id}")]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self.deliver()


def run(coro):
    return asyncio.run(coro)


def test_answers_resolve_each_stream():
    async def scenario():
        peer = Peer()
        await peer.exchange()
        tasks = [asyncio.create_task(peer.client.request(REQUEST, b"{}")) for _ in range(3)]
        await peer.exchange()
        for stream_id in (5, 1, 3):
            peer.answer(stream_id)
        return [await t for t in tasks]

    responses = run(scenario())

    assert [(r.status, r.headers["apns-id"]) for r in responses] == [
        (200, "id-1"),
        (200, "id-3"),
        (200, "id-5"),
    ]


def test_goaway_fails_unprocessed_streams_as_resendable_and_the_rest_as_retry():
    async def scenario():
        peer = Peer()
        await peer.exchange()
        taken = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
        unprocessed = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
        await peer.exchange()
        peer.h2.close_connection(last_stream_id=1)
        peer.deliver()
        results = await asyncio.gather(taken, unprocessed, return_exceptions=True)
        return results, peer.client.usable, peer.transport.closed

    (taken, unprocessed), usable, closed = run(scenario())

    assert isinstance(unprocessed, Unprocessed)
    assert isinstance(taken, TransportError) and not isinstance(taken, Unprocessed)
    assert taken.reason == "transport_goaway"
    assert not usable and closed  # the pool opens a fresh connection for the next request


def test_refused_stream_is_resendable_other_resets_are_not():
    async def scenario():
        peer = Peer()
        await peer.exchange()
        refused = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
        broken = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
        await peer.exchange()
        peer.h2.reset_stream(1, h2.errors.ErrorCodes.REFUSED_STREAM)
        peer.h2.reset_stream(3, h2.errors.ErrorCodes.INTERNAL_ERROR)
        peer.deliver()
        return await asyncio.gather(refused, broken, return_exceptions=True)

    refused, broken = run(scenario())

    assert isinstance(refused, Unprocessed)
    assert isinstance(broken, TransportError) and not isinstance(broken, Unprocessed)


def test_lost_connection_fails_in_flight_streams():
    async def scenario():
        peer = Peer()
        await peer.exchange()
        task = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
        await peer.exchange()
        peer.client.connection_lost(ConnectionResetError())
        return await asyncio.gather(task, return_exceptions=True)

    [error] = run(scenario())

    assert isinstance(error, TransportError)
    assert error.reason == "transport_ConnectionResetError"


def test_body_larger_than_the_window_is_sent_as_the_peer_opens_it():
    body = b"x" * 3000

    async def scenario():
        peer = Peer(window=1000)
        await peer.exchange()
        task = asyncio.create_task(peer.client.request(REQUEST, body))
        for _ in range(5):
            await peer.exchange()  # each round: peer reads, acknowledges, window reopens
        peer.answer(1)
        await task
        return peer.bodies[1], peer.ended

    received, ended = run(scenario())

    assert received == body
    assert ended == [1]


def test_streams_beyond_the_peer_limit_wait_for_a_free_one():
    async def scenario():
        peer = Peer(max_streams=2)
        await peer.exchange()
        tasks = [asyncio.create_task(peer.client.request(REQUEST, b"{}")) for _ in range(3)]
        events = await peer.exchange()
        opened = sum(isinstance(e, h2.events.RequestReceived) for e in events)
        peer.answer(1)
        events = await peer.exchange()
        opened_later = sum(isinstance(e, h2.events.RequestReceived) for e in events)
        peer.answer(3)
        peer.answer(5)
        await asyncio.gather(*tasks)
        return opened, opened_later

    assert run(scenario()) == (2, 1)


def test_idle_connection_with_unread_bytes_is_flagged_for_a_check():
    async def scenario():
        peer = Peer()
        await peer.exchange()
        ours, theirs = socket.socketpair()
        with ours, theirs:
            peer.transport.socket = ours
            quiet = peer.client.idle_and_readable()
            theirs.sendall(b"goaway")  # what a peer closing an idle connection sends
            unread = peer.client.idle_and_readable()
            task = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
            await peer.exchange()
            busy = peer.client.idle_and_readable()  # streams open: their reader runs anyway
            peer.answer(1)
            await task
        return quiet, unread, busy

    assert run(scenario()) == (False, True, False)


def test_cancelled_request_frees_its_stream_at_once():
    async def scenario():
        peer = Peer(max_streams=1)
        await peer.exchange()
        abandoned = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
        await peer.exchange()
        abandoned.cancel()
        events = await peer.exchange()
        reset = [e.stream_id for e in events if isinstance(e, h2.events.StreamReset)]
        task = asyncio.create_task(peer.client.request(REQUEST, b"{}"))
        await peer.exchange()
        peer.answer(3)
        return reset, (await task).status

    assert run(scenario()) == ([1], 200)
