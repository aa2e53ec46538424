"""The push client's HTTP/2 pool (libcurl) against a raw HTTP/2 peer that sends GOAWAY and
resets on cue: what the peer never processed is re-sent once, nothing it processed is re-sent,
and the peer's stream limit holds."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from channels.http2 import Http2Pool, TransportError
from ops.platform.channel_settings import HttpTransportSettings
from tests.peers import h2raw

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pool(url: str, tls, *, connections: int = 2, streams: int = 100, timeout_s: float = 5.0):
    transport = HttpTransportSettings(ca_bundle=tls.cert, timeout_s=timeout_s)
    return Http2Pool(url, transport, connections=connections, streams_per_connection=streams)


async def post_all(p: Http2Pool, n: int) -> list[object]:
    return await asyncio.gather(
        *(p.post(f"/3/device/tok-{i}", [b"apns-topic: t"], b"{}") for i in range(n)),
        return_exceptions=True,
    )


async def test_streams_beyond_goaway_are_resent_once_on_a_new_connection(tls_files):
    with h2raw.running(tls_files, h2raw.Script(goaway_at=5)) as (url, seen):
        p = pool(url, tls_files, connections=1)
        try:
            answers = await post_all(p, 20)
        finally:
            await p.aclose()

    assert [getattr(a, "status", a) for a in answers] == [200] * 20
    assert Counter(seen.processed) == Counter(f"/3/device/tok-{i}" for i in range(20))
    assert seen.connections >= 2


async def test_refused_streams_are_resent_and_other_resets_fail_for_a_later_retry(tls_files):
    script = h2raw.Script(refuse=frozenset({1, 3}), reset=frozenset({5}))
    with h2raw.running(tls_files, script) as (url, seen):
        p = pool(url, tls_files, connections=1, streams=1)  # one at a time: a fixed order
        try:
            answers = [await p.post(f"/3/device/tok-{i}", [], b"{}") for i in range(2)]
            with pytest.raises(TransportError) as reset:
                await p.post("/3/device/tok-2", [], b"{}")
        finally:
            await p.aclose()

    assert [a.status for a in answers] == [200, 200]
    assert reset.value.reason == "transport_http2_stream"
    assert seen.processed == ["/3/device/tok-0", "/3/device/tok-1"]  # tok-2 never processed


async def test_the_peers_stream_limit_holds(tls_files):
    with h2raw.running(tls_files, h2raw.Script(max_streams=5)) as (url, seen):
        p = pool(url, tls_files, connections=1, streams=100)
        try:
            await p.post("/3/device/first", [], b"{}")  # the peer's SETTINGS are known now
            answers = await post_all(p, 30)
        finally:
            await p.aclose()

    assert [getattr(a, "status", a) for a in answers] == [200] * 30
    assert seen.peak_open <= 5


async def test_a_cancelled_request_frees_its_stream_at_once(tls_files):
    with h2raw.running(tls_files, h2raw.Script(hold_s=5)) as (url, seen):
        p = pool(url, tls_files, connections=1, streams=1)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(p.post("/3/device/a", [], b"{}"), 0.5)
            second = asyncio.ensure_future(p.post("/3/device/b", [], b"{}"))
            for _ in range(50):  # the only stream is free again: b reaches the peer at once
                if seen.received == 2:
                    break
                await asyncio.sleep(0.02)
            second.cancel()
        finally:
            await p.aclose()

    assert seen.received == 2
