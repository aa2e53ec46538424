"""A real 3-master Redis Cluster on loopback, from Debian's redis-server and redis-cli.

Used by the test suite (`redis_cluster` fixture in tests/conftest.py) and by
`benchmarks/targeting.py --redis-cluster`. Nothing is persisted: `--save ''` and no AOF.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Debian's 7.0 binaries; the pyenv shims on PATH may be an older redis-server.
SERVER = shutil.which("redis-server", path="/usr/bin:/bin") or "redis-server"
CLI = shutil.which("redis-cli", path="/usr/bin:/bin") or "redis-cli"


def _free_ports(n: int) -> list[int]:
    """n TCP ports nobody listens on, whose cluster bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class LocalServer:
    """One plain redis-server of the same build, for side-by-side figures."""

    def __init__(self) -> None:
        self.port = _free_ports(1)[0]
        self.workdir = Path(tempfile.mkdtemp(prefix="ru-single-"))
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LocalServer:
        args = [SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        LocalCluster._wait(lambda: _cli(self.port, "ping") == "PONG", 30, "ping")
        return self

    def used_memory(self) -> int:
        """Bytes the server's data uses (INFO memory used_memory)."""
        return _used_memory(self.port)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _cli(port: int, *command: str) -> str:
    done = subprocess.run(
        [CLI, "-p", str(port), *command], capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip()


def _used_memory(port: int) -> int:
    info = dict(
        line.split(":", 1) for line in _cli(port, "info", "memory").splitlines() if ":" in line
    )
    return int(info.get("used_memory", 0))


@dataclass
class LocalCluster:
    """Three redis-server processes joined into one cluster with 0 replicas."""

    masters: int = 3
    maxmemory: str | None = None
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def url(self) -> str:
        """Reunite's REDIS_URL for this cluster."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Start the servers, create the cluster and wait for cluster_state:ok."""
        self.workdir = Path(tempfile.mkdtemp(prefix="ru-cluster-"))
        self.ports = _free_ports(self.masters)
        try:
            for port in self.ports:
                node = self.workdir / str(port)
                node.mkdir()
                args = [
                    SERVER,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node / "nodes.conf"),
                    "--cluster-node-timeout", "5000",
                    "--dir", str(node),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                ]  # fmt: skip
                if self.maxmemory:
                    args += ["--maxmemory", self.maxmemory]
                log = open(node / "redis.log", "wb")  # noqa: SIM115 (closed with the process)
                self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
            for port in self.ports:
                self._wait(lambda p=port: self._cli(p, "ping") == "PONG", timeout, "ping")
            subprocess.run(
                [CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports]]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            for port in self.ports:
                self._wait(
                    lambda p=port: "cluster_state:ok" in self._cli(p, "cluster", "info"),
                    timeout,
                    "cluster_state:ok",
                )
        except BaseException:
            self.stop()
            raise
        return self

    def _cli(self, port: int, *command: str) -> str:
        return _cli(port, *command)

    @staticmethod
    def _wait(check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster: no {what} within {timeout}s")
            time.sleep(0.1)

    def node_stats(self) -> list[dict[str, int]]:
        """Per node: its port, keys and used memory (bytes)."""
        return [
            {"port": p, "keys": int(_cli(p, "dbsize") or 0), "used_memory": _used_memory(p)}
            for p in self.ports
        ]

    def stop(self) -> None:
        """Stop every server and remove their directory."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
