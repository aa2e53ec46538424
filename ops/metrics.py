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
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
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

from ops import status
from ops.platform.db import session_scope
from ops.platform.redis_client import get_broker_redis, get_redis

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
    "reunite_devices_targeted",
    "Devices claimed for an alert by wave targeting (targeted devices; the ledger's targeted "
    "in reunite_alert_targets also counts partner endpoints and topics)",
    registry=LOCAL,
)
TARGETING_SECONDS = Histogram(
    "reunite_targeting_seconds",
    "Time to target one shard of a wave (read, exact test, claim)",
    buckets=_FAST,
    registry=LOCAL,
)
DELIVERIES = Counter(
    "reunite_deliveries",
    "Delivery attempts by channel, partner id and classified outcome (ok: sent, accepted by "
    "the provider; per attempt, where the ledger counts each target once)",
    ["channel", "partner", "outcome"],
    registry=LOCAL,
)
DELIVERED = Counter(
    "reunite_delivered",
    "Targets a provider's delivery receipt confirmed on the handset (every part; SMS only); "
    "the ledger's `delivered`, counted once per target",
    ["channel", "partner"],
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
RECONCILED = Counter(
    "reunite_reconciler_requeued",
    "Targets the reconciler queued again after their unit was lost or stalled",
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
GaugeSource = Callable[[Any, redis.Redis], Iterable[GaugeMetricFamily]]
"""A domain's scrape-time gauges, read from a database session and Redis."""

_sources: list[GaugeSource] = []
_queues: list[str] = []


def register_gauges(source: GaugeSource) -> None:
    """Add a domain's gauges to every scrape (the composition root calls this once)."""
    if source not in _sources:
        _sources.append(source)


def watch_queues(queues: Iterable[str]) -> None:
    """Name the Celery queues whose depths /metrics reports."""
    _queues[:] = list(queues)


def record_outcomes(channel: str, results: Sequence[tuple[Any, Any]]) -> None:
    """Count a batch's classified outcomes, grouped so the cost is one call per group."""
    groups = Tally((getattr(t, "partner_id", 0), str(o.kind)) for t, o in results)
    for (partner, outcome), n in groups.items():
        DELIVERIES.labels(channel, str(partner), outcome).inc(n)
        if outcome == "dead_target":
            DEAD_TOKENS.labels(channel, str(partner)).inc(n)
        elif outcome == "retry":
            RETRIES.labels(channel).inc(n)


def record_delivered(channel: str, partner: int, n: int) -> None:
    """Count targets the ledger newly counted as delivered (a receipt confirmed them)."""
    if n:
        DELIVERED.labels(channel, str(partner)).inc(n)


def record_dead_letters(channel: str, n: int) -> None:
    """Count targets moved to the dead-letter store."""
    DEAD_LETTERS.labels(channel).inc(n)


class SystemCollector:
    """Gauges computed at scrape time from the database and Redis."""

    def collect(self):
        """Yield every registered domain's gauges, queue depths and worker heartbeats."""
        errors = GaugeMetricFamily(
            "reunite_scrape_errors", "1 when a source could not be read", labels=["source"]
        )
        try:
            with session_scope() as session:
                families = [f for source in _sources for f in source(session, get_redis())]
        except (SQLAlchemyError, redis.RedisError) as exc:
            errors.add_metric(["database" if isinstance(exc, SQLAlchemyError) else "redis"], 1)
            families = []
        yield from families
        try:
            broker = get_broker_redis()
            try:
                depths = status.queue_depths(broker, _queues)
                held = status.unacked(broker)
            finally:
                broker.close()
            beats = status.heartbeats(get_redis())
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
    registry = CollectorRegistry(auto_describe=False)
    shared = metrics_dir is not None and metrics_dir.is_dir() and any(metrics_dir.glob("*.db"))
    if shared:
        MultiProcessCollector(registry, path=str(metrics_dir))
    if not MULTIPROCESS and not shared:
        registry.register(_Local())
    registry.register(SystemCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_process_metrics(port: int, metrics_dir: Path) -> None:
    """Serve this machine's worker counters on a port (for worker machines without the API).

    Only the multiprocess counters and histograms: the system gauges come from the API's
    /metrics, so a Prometheus scraping both does not see them twice.
    """
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(metrics_dir))
    start_http_server(port, registry=registry)
