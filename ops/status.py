"""What operators look at first: queue depths and worker heartbeats.

Read at request time from Redis; shared by /metrics, /readyz and `reunite status` (the
domains add their own rows: breakers and dead letters in `channels.status`, cases by state in
`alerts.cases.service`). Everything here is ids, channel names and counts: never personal data.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import redis

from ops.platform import redis_client

HEARTBEAT_PREFIX = "ops:worker:"
HEARTBEAT_INTERVAL_S = 10.0
# A worker that missed this many beats is no longer "seen recently".
HEARTBEAT_TTL_S = 3 * HEARTBEAT_INTERVAL_S
# kombu's Redis transport keeps a queue's priority levels in sibling lists: name, name\x06\x16N.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


@dataclass(frozen=True)
class Heartbeat:
    """One worker's last heartbeat."""

    worker: str
    pid: int
    queues: list[str]
    seen_at: float

    @property
    def age_s(self) -> float:
        """Seconds since the worker last beat."""
        return max(0.0, time.time() - self.seen_at)


def queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold one Celery queue's messages."""
    return [queue if p == 0 else f"{queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS]


def queue_depths(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Messages waiting per queue (LLEN over the queue's priority lists), one round trip."""
    pipe = client.pipeline(transaction=False)
    for q in queues:
        for key in queue_keys(q):
            pipe.llen(key)
    lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {q: int(sum(lengths[i * steps : (i + 1) * steps])) for i, q in enumerate(queues)}


def unacked(client: redis.Redis) -> int:
    """Messages taken by workers and not yet acknowledged (includes countdown retries held)."""
    return int(client.hlen("unacked"))


def beat(client: redis.Redis, worker: str, queues: list[str]) -> None:
    """Record that this worker is alive; the key expires if it stops beating."""
    doc = {"worker": worker, "pid": os.getpid(), "queues": queues, "seen_at": time.time()}
    client.set(HEARTBEAT_PREFIX + worker, json.dumps(doc), ex=int(HEARTBEAT_TTL_S))


def forget(client: redis.Redis, worker: str) -> None:
    """Remove a worker's heartbeat at a clean shutdown."""
    client.delete(HEARTBEAT_PREFIX + worker)


def heartbeats(client: redis.Redis) -> list[Heartbeat]:
    """Workers seen within the heartbeat TTL, by name."""
    keys = sorted(client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=500))
    out = []
    for raw in redis_client.get_many(client, keys):
        if raw is None:
            continue
        doc = json.loads(raw)
        out.append(Heartbeat(doc["worker"], int(doc["pid"]), list(doc["queues"]), doc["seen_at"]))
    return out


class HeartbeatThread(threading.Thread):
    """Beats every HEARTBEAT_INTERVAL_S from a worker's main process, independent of beat."""

    def __init__(self, url: str, worker: str, queues: list[str]) -> None:
        super().__init__(name="reunite-heartbeat", daemon=True)
        self.client = redis_client.connect(url, socket_connect_timeout=2, socket_timeout=2)
        self.worker = worker or socket.gethostname()
        self.queues = queues
        self.stopped = threading.Event()

    def run(self) -> None:
        """Beat until stopped; a Redis outage only delays the next beat."""
        while not self.stopped.is_set():
            try:
                beat(self.client, self.worker, self.queues)
            except redis.RedisError:
                pass  # readiness reports the missing heartbeat; the worker itself is fine
            self.stopped.wait(HEARTBEAT_INTERVAL_S)

    def stop(self) -> None:
        """Stop beating and remove the heartbeat."""
        self.stopped.set()
        try:
            forget(self.client, self.worker)
        except redis.RedisError:
            pass  # the key expires on its own
