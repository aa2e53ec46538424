"""The process-wide Redis client for the configured (or embedded) Redis."""

from __future__ import annotations

from functools import lru_cache

import redis

from ops.platform.config import get_settings


@lru_cache
def get_redis() -> redis.Redis:
    """A pooled client; safe to share across threads."""
    return redis.Redis.from_url(get_settings().resolved_redis_url, socket_connect_timeout=2)
