"""Running a sink: an ASGI app under hypercorn (HTTP/1.1 or HTTP/2 over TLS) in a thread.

Each sink gets its own thread and event loop so a test's own loop, and the client under test,
never share a scheduler with the peer: a blocked client cannot hide a slow server or the other
way round.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Endpoint:
    """Where a running sink listens, and the CA bundle to trust if it speaks TLS."""

    url: str
    ca_bundle: Path | None = None


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    @property
    def ca_bundle(self) -> Path:
        """The self-signed cert doubles as the CA bundle a client trusts."""
        return self.cert


def make_self_signed(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Write a fresh self-signed cert and key for host (an IP and 'localhost' as SANs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reunite-sink")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "sink-cert.pem", directory / "sink-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert_path, key_path)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers that cannot take a bound socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LoopThread:
    """An event loop in a daemon thread, for running a server beside sync or async tests."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


@contextmanager
def serve_asgi(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TlsFiles | None = None,
    name: str = "sink",
) -> Iterator[str]:
    """Serve app in a background thread; yields the base URL. HTTP/2 is offered over TLS."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    bound_port = sock.getsockname()[1]

    config = Config()
    # Hypercorn adopts the fd and closes it on shutdown; detach so we never close a reused fd.
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.2
    config.keep_alive_timeout = 30
    # Many concurrent streams per connection, as APNs allows once the first request is accepted.
    config.h2_max_concurrent_streams = 1000
    if tls is not None:
        config.certfile = str(tls.cert)
        config.keyfile = str(tls.key)
        config.alpn_protocols = ["h2", "http/1.1"]

    runner = LoopThread(name)
    runner.start()
    stop: asyncio.Event | None = None

    async def make_event() -> asyncio.Event:
        return asyncio.Event()

    stop = runner.call(make_event())
    future = asyncio.run_coroutine_threadsafe(
        # Our App alias is the plain-dict ASGI shape; hypercorn's typed dicts are the same thing.
        serve(app, config, shutdown_trigger=stop.wait),  # type: ignore[arg-type]
        runner.loop,
    )
    scheme = "https" if tls else "http"
    try:
        _wait_listening(host, bound_port, future)
        yield f"{scheme}://{host}:{bound_port}"
    finally:
        runner.loop.call_soon_threadsafe(stop.set)
        try:
            future.result(5)
        except TimeoutError:
            future.cancel()
        runner.stop()


def _wait_listening(host: str, port: int, future: Any) -> None:
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if future.done():
            future.result()  # re-raise the start-up error
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"sink on {host}:{port} did not start")


@contextmanager
def temp_tls(host: str = "127.0.0.1") -> Iterator[TlsFiles]:
    """A self-signed cert in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="reunite-sink-") as d:
        yield make_self_signed(Path(d), host)


# ---- tiny ASGI helpers (no framework: the sinks must look like the provider, byte for byte) ----


async def read_body(receive: Receive, limit: int = 1 << 20) -> bytes:
    """Read the whole request body (up to limit bytes, beyond which the rest is dropped)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def headers_of(scope: Scope) -> dict[str, str]:
    """Request headers as a lower-case dict (last one wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def respond(
    send: Send,
    status: int,
    body: bytes | dict | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send a complete response; dict bodies go out as JSON."""
    raw = b""
    out = dict(headers or {})
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
        out.setdefault("content-type", "application/json")
    elif body is not None:
        raw = body
    out["content-length"] = str(len(raw))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in out.items()],
        }
    )
    await send({"type": "http.response.body", "body": raw})


async def lifespan(receive: Receive, send: Send) -> None:
    """Accept lifespan start/stop so hypercorn does not log a warning."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
