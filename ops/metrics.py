"""Prometheus metrics at /metrics, shared by the API and every Celery worker process.

Counters and histograms live in prometheus-client's multiprocess files: the CLI points
PROMETHEUS_MULTIPROC_DIR at the data dir before any worker forks, and a scrape merges every
process's file. Gauges that describe the system rather than one process (cases by state, queue
depths, breakers, dead letters, worker heartbeats) are computed at scrape time from the
database and Redis, so they are right whichever process answers.

Labels carry channel names, partner ids, outcomes, queue and state names: never personal data,
device ids, addresses or case ids. Hot-path calls are counter increments grouped per batch.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

# Our own registry: never the global one, so a multiprocess scrape does not count us twice.
LOCAL = CollectorRegistry(auto_describe=True)
MULTIPROCESS = values.ValueClass is not values.MutexValue
if MULTIPROCESS:
    # Files are named by host and pid: containers sharing one metrics volume (compose scaled
    # workers) each number their processes from 1, and plain pids would collide.
    _HOST = socket.gethostname().replace("_", "-")
    values.ValueClass = values.MultiProcessValue(
        process_identifier=lambda: f"{_HOST}-{os.getpid()}"
    )

# Seconds: from one shard's targeting to a wave draining over hours.
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DELIVERY = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)

WAVES_STARTED = Counter(
    "reunite_waves_started", "Alert waves started (message created, shards queued)", registry=LOCAL
)
SHARDS_TARGETED = Counter(
    "reunite_shards_targeted", "Shards targeted by wave tasks", registry=LOCAL
)
DEVICES_TARGETED = Counter(
    "reunite_devices_targeted", "Devices claimed for an alert by wave targeting", registry=LOCAL
)
TARGETING_SECONDS = Histogram(
    "reunite_targeting_seconds",
    "Time to target one shard of a wave (read, exact test, claim)",
    buckets=_FAST,
    registry=LOCAL,
)
DELIVERIES = Counter(
    "reunite_deliveries",
    "Delivery attempts by channel, partner id and classified outcome",
    ["channel", "partner", "outcome"],
    registry=LOCAL,
)
RETRIES = Counter(
    "reunite_delivery_retries", "Targets scheduled for a retry", ["channel"], registry=LOCAL
)
DEAD_TOKENS = Counter(
    "reunite_dead_tokens",
    "Device tokens or endpoints found dead and deactivated",
    ["channel", "partner"],
    registry=LOCAL,
)
DEAD_LETTERS = Counter(
    "reunite_dead_letters",
    "Targets dead-lettered past the retry horizon",
    ["channel"],
    registry=LOCAL,
)
APPROVAL_TO_FIRST = Histogram(
    "reunite_approval_to_first_delivery_seconds",
    "From a case's approval to its first delivered alert",
    buckets=_DELIVERY,
    registry=LOCAL,
)
APPROVAL_TO_LAST = Histogram(
    "reunite_approval_to_last_delivery_seconds",
    "From a case's approval to its first alert wave fully delivered (every target final)",
    buckets=_DELIVERY,
    registry=LOCAL,
)
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_FINAL = ("sent", "failed", "dead", "dead_lettered")
_approved_at: dict[str, float] = {}


def record_outcomes(channel: str, results: Sequence[tuple[Any, Any]]) -> None:
    """Count a batch's classified outcomes, grouped so the cost is one call per group."""
    groups = Tally((getattr(t, "partner_id", 0), str(o.kind)) for t, o in results)
    for (partner, outcome), n in groups.items():
        DELIVERIES.labels(channel, str(partner), outcome).inc(n)
        if outcome == "dead_target":
            DEAD_TOKENS.labels(channel, str(partner)).inc(n)
        elif outcome == "retry":
            RETRIES.labels(channel).inc(n)


def record_dead_letters(channel: str, n: int) -> None:
    """Count targets moved to the dead-letter store."""
    DEAD_LETTERS.labels(channel).inc(n)


def _approval_time(case_id: str) -> float | None:
    if case_id not in _approved_at:
        from alerts.cases.models import Case
        from alerts.db import session_scope

        with session_scope() as session:
            case = session.get(Case, case_id)
            if case is None or case.approved_at is None:
                return None
            _approved_at[case_id] = case.approved_at.timestamp()
        while len(_approved_at) > 1024:
            _approved_at.pop(next(iter(_approved_at)))
    return _approved_at[case_id]


def after_batch(client: redis.Redis, message_id: str, sent: int) -> None:
    """Observe approval -> first delivery and -> first wave drained, once per case, cluster-wide."""
    case_id, _, rest = message_id.partition(":")
    if not rest.startswith("alert:"):
        return
    first_key, last_key = f"ops:m:first:{case_id}", f"ops:m:last:{case_id}"
    if sent and client.set(first_key, 1, nx=True, ex=8 * 86400):
        approved = _approval_time(case_id)
        if approved is not None:
            APPROVAL_TO_FIRST.observe(max(0.0, time.time() - approved))
    if client.exists(last_key) or not _drained(client, message_id):
        return
    if _targeting_finished(message_id) and client.set(last_key, 1, nx=True, ex=8 * 86400):
        approved = _approval_time(case_id)
        if approved is not None:
            APPROVAL_TO_LAST.observe(max(0.0, time.time() - approved))


def _drained(client: redis.Redis, message_id: str) -> bool:
    from channels import ledger

    counts = ledger.live_counts(client, message_id)
    targeted = sum(row["targeted"] for row in counts.values())
    final = sum(row[s] for row in counts.values() for s in _FINAL)
    return targeted > 0 and final >= targeted


def _targeting_finished(message_id: str) -> bool:
    """Every shard of the message's wave was targeted (so no more targets will be added)."""
    from sqlalchemy import select

    from alerts.db import session_scope
    from geo.waves.models import Wave

    with session_scope() as session:
        status = session.scalar(select(Wave.status).where(Wave.message_id == message_id))
    return status in (None, "started")


class SystemCollector:
    """Gauges computed at scrape time from the database and Redis."""

    def __init__(self, queues: Iterable[str]) -> None:
        self.queues = list(queues)

    def collect(self):
        """Yield cases by state, queue depths, breakers, dead letters and worker heartbeats."""
        from alerts.db import session_scope
        from alerts.redis_client import get_redis
        from ops import status

        errors = GaugeMetricFamily(
            "reunite_scrape_errors", "1 when a source could not be read", labels=["source"]
        )
        try:
            with session_scope() as session:
                cases = status.cases_by_state(session)
                letters = status.dead_letters_pending(session)
                breakers = status.breakers(get_redis(), session)
        except (SQLAlchemyError, redis.RedisError) as exc:
            errors.add_metric(["database" if isinstance(exc, SQLAlchemyError) else "redis"], 1)
            cases, letters, breakers = {}, {}, []
        family = GaugeMetricFamily("reunite_cases", "Cases by lifecycle state", labels=["state"])
        for state, n in cases.items():
            family.add_metric([state], n)
        yield family
        family = GaugeMetricFamily(
            "reunite_dead_letters_pending", "Dead-lettered targets not replayed", labels=["channel"]
        )
        for channel, n in letters.items():
            family.add_metric([channel], n)
        yield family
        family = GaugeMetricFamily(
            "reunite_breaker_state",
            "Circuit breaker per channel and partner: 0 closed, 1 half-open, 2 open",
            labels=["channel", "partner"],
        )
        for row in breakers:
            family.add_metric([row.channel, str(row.partner_id)], BREAKER_VALUES.get(row.state, 0))
        yield family
        try:
            client = get_redis()
            depths = status.queue_depths(client, self.queues)
            held = status.unacked(client)
            beats = status.heartbeats(client)
        except redis.RedisError:
            errors.add_metric(["redis"], 1)
            depths, held, beats = {}, None, []
        family = GaugeMetricFamily(
            "reunite_queue_depth", "Messages waiting in each Celery queue", labels=["queue"]
        )
        for queue, n in depths.items():
            family.add_metric([queue], n)
        yield family
        if held is not None:
            yield GaugeMetricFamily(
                "reunite_queue_unacked", "Messages held by workers, not yet acknowledged", held
            )
        family = GaugeMetricFamily(
            "reunite_worker_heartbeat_age_seconds",
            "Seconds since each worker last beat",
            labels=["worker"],
        )
        for hb in beats:
            family.add_metric([hb.worker], hb.age_s)
        yield family
        yield GaugeMetricFamily("reunite_workers_seen", "Workers seen recently", len(beats))
        yield errors


class _Local:
    """This process's own metrics, when it is not writing multiprocess files."""

    def collect(self):
        """Yield the process-local registry's metrics."""
        yield from LOCAL.collect()


def render(metrics_dir: Path | None) -> tuple[bytes, str]:
    """The exposition text of every process's counters plus the scrape-time gauges."""
    from alerts.celery_app import QUEUES

    registry = CollectorRegistry(auto_describe=False)
    shared = metrics_dir is not None and metrics_dir.is_dir() and any(metrics_dir.glob("*.db"))
    if shared:
        MultiProcessCollector(registry, path=str(metrics_dir))
    if not MULTIPROCESS and not shared:
        registry.register(_Local())
    registry.register(SystemCollector(QUEUES))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_process_metrics(port: int, metrics_dir: Path) -> None:
    """Serve this machine's worker counters on a port (for worker machines without the API).

    Only the multiprocess counters and histograms: the system gauges come from the API's
    /metrics, so a Prometheus scraping both does not see them twice.
    """
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(metrics_dir))
    start_http_server(port, registry=registry)
