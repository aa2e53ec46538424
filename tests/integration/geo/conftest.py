"""Real Redis for the geo index: database 15 of REDIS_URL (default the local server), flushed."""

import os

import pytest
import redis


@pytest.fixture
def geo_redis():
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    pool = redis.ConnectionPool.from_url(url)
    pool.connection_kwargs["db"] = 15
    client = redis.Redis(connection_pool=pool)
    client.flushdb()
    yield client
    client.flushdb()
    pool.disconnect()
