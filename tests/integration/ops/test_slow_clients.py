"""Slow clients are cut off by the API server itself (ops/slowclients.py), over real sockets:
dribbled headers within the header deadline, a stalled body after its idle gap; a normal
client, a kept-alive one and a slow application are untouched."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ops import slowclients
from tests.workers import reunite_env, reunite_process, serving, wait_for


async def echo(scope, receive, send):
    """Reads the whole body (after `x-think` seconds), answers with its length."""
    if scope["type"] != "http":
        return
    think = float(dict(scope["headers"]).get(b"x-think", b"0"))
    await asyncio.sleep(think)
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    answer = str(size).encode()
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def body_of(sock: socket.socket) -> bytes:
    """One response's body (it carries a content-length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return body


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection (EOF), or None if it stayed open."""
    began = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - began


@pytest.fixture
def server():
    with serving(echo, http=slowclients.guard(1.0, 1.0)) as url:
        yield url


def test_dribbled_headers_are_cut_off_at_the_header_deadline(server):
    sock = connect(server)
    began = time.monotonic()
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\n":
        try:
            sock.send(bytes([byte]))
        except OSError:
            break  # closed while dribbling: what we want
        time.sleep(0.1)
        if time.monotonic() - began > 3:
            break
    assert closed_within(sock, 3) is not None
    assert time.monotonic() - began < 2.5, "dribbling must not extend the header deadline"


def test_a_stalled_body_is_cut_off_after_its_idle_gap(server):
    sock = connect(server)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
    after = closed_within(sock, 4)
    assert after is not None and 0.8 < after < 2.5, after


def test_normal_kept_alive_and_slow_app_requests_are_answered(server):
    sock = connect(server)
    body = b"b" * 50_000
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n" + body)
    assert body_of(sock) == b"50000"
    time.sleep(0.5)  # idle between requests is keep-alive's business (5 s), not the guard's
    # The application thinks for 2 s before reading: longer than both deadlines.
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nx-think: 2\r\nContent-Length: 3\r\n\r\nabc")
    assert body_of(sock) == b"3"
    sock.close()


def test_reunite_api_closes_a_slowloris_crowd(tmp_path):
    """The wiring: `reunite api` runs with the guard (here a 2 s header deadline), so dribbling
    connections are closed while a normal request is still answered."""
    from tests.workers import free_port

    port = free_port()
    from tests.conftest import REDIS_URL

    env = reunite_env(
        DATABASE_URL=None,
        REDIS_URL=REDIS_URL,  # the suite's: an embedded one would outlive `reunite api`
        REUNITE_DATA_DIR=str(tmp_path / "d"),
        REUNITE_HTTP_HEADER_TIMEOUT_S="2",
    )
    with reunite_process(["api", "--port", str(port)], env, tmp_path, tmp_path / "api.log"):
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                with connect(url) as s:
                    s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return s.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

        wait_for(up, timeout=60)
        crowd = [connect(url) for _ in range(50)]
        for sock in crowd:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")  # never finished
        time.sleep(3.5)
        still_open = [s for s in crowd if closed_within(s, 0.05) is None]
        assert still_open == [], f"{len(still_open)} of 50 slow connections still open"
        assert up(), "a normal request is still answered"
