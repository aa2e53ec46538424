"""Run a few child processes and keep them running, like compose's restart policy.

`reunite serve` and `reunite demo` use it for api, worker and beat on one machine: a child
that dies (say, a worker on a Redis restart) comes back; one that keeps dying stops everything
with a clear error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
# How long children get to finish in-flight work after SIGTERM before their process groups are
# killed (queued work is acked late, so a killed task runs again elsewhere).
STOP_WAIT_S = 8.0


class Supervisor:
    """Children by name, each started from its command line with one shared environment."""

    def __init__(self, commands: Mapping[str, Sequence[str]], env: Mapping[str, str]) -> None:
        self.commands = {name: list(cmd) for name, cmd in commands.items()}
        self.env = dict(env)
        self.children: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, list[float]] = {name: [] for name in commands}
        self.stopping = False

    def _start(self, name: str) -> None:
        # A process group of its own: the terminal's Ctrl-C reaches only the supervisor, which
        # stops the children in order (no child, nor a worker's pool, reacting on its own).
        self.children[name] = subprocess.Popen(self.commands[name], env=self.env, process_group=0)

    def _stop_on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> str | None:
        """Start every child and supervise until SIGINT/SIGTERM; the name of a child that kept
        dying (more than MAX_RESTARTS times within RESTART_WINDOW_S), else None."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop_on_signal)
        for name in self.commands:
            self._start(name)
        try:
            return self._watch()
        finally:
            self.stop()

    def _watch(self) -> str | None:
        while not self.stopping:
            time.sleep(0.5)
            for name, child in list(self.children.items()):
                if self.stopping or child.poll() is None:
                    continue
                now = time.monotonic()
                recent = [t for t in self.restarts[name] if now - t < RESTART_WINDOW_S] + [now]
                self.restarts[name] = recent
                if len(recent) > MAX_RESTARTS:
                    return name
                log.warning("%s exited with %s; restarting it", name, child.returncode)
                self._start(name)
        return None

    def stop(self) -> None:
        """SIGTERM every child; after STOP_WAIT_S in all, kill what is left of their process
        groups (a worker's pool processes included)."""
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("a child did not stop within %.0f s; killing it", STOP_WAIT_S)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)  # leftovers of its group, if any
            child.wait()
