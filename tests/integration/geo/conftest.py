"""Real Redis for the geo index: database 15 of REDIS_URL (default the local server), flushed,
and a real Redis Cluster (tests/conftest.py `redis_cluster`, opt-in as `app_redis` is)."""

import os

import pytest
import redis


@pytest.fixture(params=["single", "cluster"])
def geo_redis(request):
    if request.param == "cluster":  # skipped by default unless cluster_smoke (tests/conftest.py)
        from ops.platform.redis_client import connect

        client = connect(request.getfixturevalue("redis_cluster").url)
        client.flushall()
        yield client
        client.flushall()
        client.close()
        return
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    pool = redis.ConnectionPool.from_url(url)
    pool.connection_kwargs["db"] = 15
    client = redis.Redis(connection_pool=pool)
    client.flushdb()
    yield client
    client.flushdb()
    pool.disconnect()
