"""The process-wide Redis client for the configured (or embedded) Redis, or a Redis Cluster.

`REDIS_URL=redis+cluster://host:port` (any node of the cluster) gives a `redis.RedisCluster`;
anything else a plain `redis.Redis`. Code that takes a client works with either, because every
key Reunite writes is cluster-safe (docs/OPERATIONS.md, "Redis Cluster"): a Lua script or a
MULTI touches keys of one hash slot only, and pipelines are non-transactional. The helpers
below cover the few places where the two clients differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import Script
from redis.exceptions import RedisClusterException

from ops.platform.config import get_settings, is_cluster_url


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for a Redis URL: `redis+cluster://` (`rediss+cluster://`) is a cluster."""
    if is_cluster_url(url):
        parts = urlsplit(url)
        scheme = "rediss" if parts.scheme.startswith("rediss") else "redis"
        # A cluster has one database: a /N path would be refused by every node.
        plain = urlunsplit((scheme, parts.netloc, "", parts.query, ""))
        try:
            return RedisCluster.from_url(plain, **options)  # type: ignore[return-value]
        except RedisClusterException as exc:
            # The client maps the cluster when it is made: no node answering is an outage
            # (retried like any other), not a bug.
            raise redis.ConnectionError(f"Redis Cluster at {parts.netloc}: {exc}") from exc
    return redis.Redis.from_url(url, **options)


@lru_cache
def get_redis() -> redis.Redis:
    """A pooled client; safe to share across threads."""
    return connect(get_settings().resolved_redis_url, socket_connect_timeout=2)


def get_broker_redis() -> redis.Redis:
    """A new client for Celery's broker Redis (queue depths, unacked messages); close it."""
    return redis.Redis.from_url(get_settings().broker_redis_url, socket_connect_timeout=2)


def is_cluster(client: Any) -> bool:
    """Whether a client (or pipeline) talks to a Redis Cluster."""
    return isinstance(client, RedisCluster | ClusterPipeline)


def queue_script(pipe: Any, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> None:
    """Queue a registered script in a pipeline.

    A cluster pipeline cannot load a script the node lacks (NOSCRIPT would surface from
    `execute`, after the other commands ran), so there the script goes as EVAL with its body;
    a plain pipeline loads it first and sends EVALSHA, as redis-py always did.
    """
    if isinstance(pipe, ClusterPipeline):
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
    else:
        script(keys=keys, args=args, client=pipe)


def get_many(client: Any, keys: Sequence[Any]) -> list[Any]:
    """MGET, split per slot on a cluster (not atomic there; callers only read)."""
    if not keys:
        return []
    if isinstance(client, RedisCluster):
        return client.mget_nonatomic(list(keys))
    return client.mget(keys)
