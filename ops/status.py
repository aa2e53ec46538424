"""What operators look at: queue depths, worker heartbeats, breakers, dead letters, cases by state.

Read at request time from Redis and the database; shared by /metrics, /readyz and
`reunite status`. Everything here is ids, channel names and counts: never personal data.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class BreakerRow:
    """A breaker's state, named by channel and partner (0 when the breaker is a provider's)."""

    channel: str
    partner_id: int
    endpoint_id: int | None
    state: str


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
    for raw in client.mget(keys) if keys else []:
        if raw is None:
            continue
        doc = json.loads(raw)
        out.append(Heartbeat(doc["worker"], int(doc["pid"]), list(doc["queues"]), doc["seen_at"]))
    return out


class HeartbeatThread(threading.Thread):
    """Beats every HEARTBEAT_INTERVAL_S from a worker's main process, independent of beat."""

    def __init__(self, url: str, worker: str, queues: list[str]) -> None:
        super().__init__(name="reunite-heartbeat", daemon=True)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
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


def breakers(client: redis.Redis, session: Session | None) -> list[BreakerRow]:
    """Every breaker Redis knows, with the partner behind each webhook endpoint."""
    from channels.models import PartnerEndpoint

    names: dict[str, str] = {}
    for key in client.scan_iter(match="ch:breaker:*", count=500):
        key = key.decode() if isinstance(key, bytes) else key
        state = client.hget(key, "state")
        names[key[len("ch:breaker:") :]] = state.decode() if state else "closed"
    endpoint_ids = [int(n.split(":", 1)[1]) for n in names if n.startswith("webhook:")]
    partner_of: dict[int, int] = {}
    if endpoint_ids and session is not None:
        rows = session.execute(
            select(PartnerEndpoint.id, PartnerEndpoint.partner_id).where(
                PartnerEndpoint.id.in_(endpoint_ids)
            )
        )
        partner_of = {r.id: r.partner_id for r in rows}
    out = []
    for name, state in sorted(names.items()):
        channel, _, rest = name.partition(":")
        endpoint = int(rest) if channel == "webhook" and rest.isdigit() else None
        partner = partner_of.get(endpoint, 0) if endpoint is not None else 0
        out.append(BreakerRow(channel, partner, endpoint, state))
    return out


def dead_letters_pending(session: Session) -> dict[str, int]:
    """Dead letters not yet replayed, per channel (targets, not letters)."""
    from channels.models import DeadLetter

    rows = session.execute(
        select(DeadLetter.channel, DeadLetter.targets).where(DeadLetter.replayed_at.is_(None))
    )
    out: dict[str, int] = {}
    for channel, targets in rows:
        out[channel] = out.get(channel, 0) + len(targets or [])
    return out


def cases_by_state(session: Session) -> dict[str, int]:
    """How many cases are in each lifecycle state (every state listed, zeros included)."""
    from alerts.cases.lifecycle import CaseState
    from alerts.cases.models import Case

    counts = dict.fromkeys((str(s) for s in CaseState), 0)
    for state, n in session.execute(select(Case.state, func.count()).group_by(Case.state)):
        counts[str(state)] = int(n)
    return counts
