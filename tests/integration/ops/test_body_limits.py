"""Request bodies are bounded before authentication or parsing, per route, while streaming.

Before, a 200 MB JSON body to /api/v1/cases answered 401 only after the API had grown from
256 to 654 MB, and a deeply nested bulk upload answered 500 or reset the connection.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.workers import serving

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def server(database) -> Iterator[str]:
    from alerts.app import create_app

    with serving(create_app()) as url:
        yield url


def _raw_post(base: str, path: str, headers: str, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """POST over a raw socket (a client that lies or streams); returns (first response
    bytes, body bytes sent before the server answered or closed)."""
    host, port = base.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
        sock.setblocking(False)
        answer = b""
        for chunk in chunks:
            try:
                answer = sock.recv(4096)
            except BlockingIOError:
                answer = b""
            if answer:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, OSError):
                break
            sent += len(chunk)
        # The rest of the answer, however it is split, until the server closes or goes quiet.
        sock.settimeout(2)
        while not answer or b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            try:
                more = sock.recv(4096)
            except OSError:
                break
            if not more:
                break
            answer += more
    return answer, sent


def test_a_declared_oversized_anonymous_body_is_413_before_anything_reads_it(server):
    headers = "Content-Type: application/json\r\nContent-Length: 209715200\r\n"
    answer, _ = _raw_post(server, "/api/v1/cases", headers, iter([b"{}"]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than 1048576 bytes" in answer


def test_a_chunked_body_is_cut_off_once_it_passes_the_route_limit(server):
    def chunks() -> Iterator[bytes]:
        for _ in range(400):  # 400 x 64 KB = 25 MB, if nobody stopped it
            yield b"10000\r\n" + b" " * 65536 + b"\r\n"
            time.sleep(0.002)

    headers = "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n"
    answer, sent = _raw_post(server, "/api/v1/auth/token", headers, chunks())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 2 * 2**20, f"{sent} bytes were taken for a 16 KB route"


def test_a_deeply_nested_bulk_upload_is_422_naming_the_body(server, redis_client):
    from alerts.partners import service as partners
    from ops.platform.db import session_scope

    with session_scope() as s:
        partner = partners.create_partner(s, "Maps", partners.PartnerKind.APP, actor="test")
        key = partners.issue_key(s, partner, [partners.Scope.DEVICES_WRITE], actor="test")
    body = b"[" * 100_000 + b"]" * 100_000
    with httpx.Client(base_url=server, timeout=30) as http:
        res = http.post(
            "/api/v1/partner/devices/bulk",
            content=body,
            headers={"content-type": "application/json", "Authorization": f"Bearer {key}"},
        )
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0] == {
        "field": "body",
        "message": "body is nested too deeply (rows are flat objects)",
    }


def test_deep_nesting_in_any_json_body_is_422_naming_the_body(server):
    body = b'{"child": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with httpx.Client(base_url=server, timeout=30) as http:
        res = http.post("/api/v1/cases", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["field"] == "body"
