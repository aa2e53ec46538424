"""Shared test wiring: real Redis (the machine's or an embedded one) and real databases.

REDIS_URL and DATABASE_URL from the environment point the suite at real services (CI sets them);
without them the suite starts an embedded Redis and uses SQLite, so it runs anywhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# Decide the services before any Reunite module reads its settings.
os.environ.setdefault("REUNITE_MODE", "test")
POSTGRES_URL = os.environ.pop("DATABASE_URL", None)
_embedded = None
_embedded_dir: str | None = None
if not os.environ.get("REDIS_URL"):
    from ops.platform.embedded import EmbeddedRedis

    # A short path: unix socket paths are limited to about 100 bytes.
    _embedded_dir = tempfile.mkdtemp(prefix="ru-")
    _embedded = EmbeddedRedis(Path(_embedded_dir))
    _embedded.start()
    os.environ["REDIS_URL"] = _embedded.url
REDIS_URL = os.environ["REDIS_URL"]
# Tests taking `app_redis` run on a single Redis and on a real 3-master Redis Cluster. The
# cluster run of all of them is opt-in (REUNITE_TEST_REDIS_CLUSTER=1); by default only the
# ones marked `cluster_smoke` run on it, a representative subset that keeps CI in its budget.
CLUSTER_ALL = os.environ.get("REUNITE_TEST_REDIS_CLUSTER") == "1"

BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
# Tests that start real worker processes (`slow`) run once per database only where there is
# no PostgreSQL; with one, they run on it and on SQLite only over the Redis Cluster (their
# `cluster_smoke` runs). The e2e tests drive the embedded SQLite default with real workers.
# REUNITE_TEST_SLOW_ON_SQLITE=1 runs every slow test on SQLite as well.
SLOW_ON_SQLITE = not POSTGRES_URL or os.environ.get("REUNITE_TEST_SLOW_ON_SQLITE") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    # The broker database is the suite's own: stale tasks from an earlier run must not leak in.
    redis.Redis.from_url(REDIS_URL).flushdb()
    # In-process code paths (the API under TestClient, tasks called directly) need the same
    # composition root as the real processes.
    from alerts import bootstrap

    bootstrap.wire()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside REUNITE_TEST_REDIS_CLUSTER=1, run on the cluster only the `cluster_smoke` tests,
    with one database backend (Redis does not care which). Skipped here, before any fixture
    (a database reset and migration) runs for them. Slow tests on SQLite and a single Redis
    are deselected when PostgreSQL is there (SLOW_ON_SQLITE)."""
    if not SLOW_ON_SQLITE:
        ids = {item.nodeid for item in items}
        kept, dropped = [], []
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            sqlite_single = params.get("database") == "sqlite" and "cluster" not in (
                params.get("app_redis"),
                params.get("geo_redis"),
            )
            # Only where the same test runs on PostgreSQL (some run on SQLite alone).
            twin = item.nodeid.replace("[sqlite", "[postgresql", 1) in ids
            slow = item.get_closest_marker("slow") is not None
            (dropped if slow and sqlite_single and twin else kept).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    if CLUSTER_ALL:
        return
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "cluster" not in (params.get("app_redis"), params.get("geo_redis")):
            continue
        if item.get_closest_marker("cluster_smoke") is None:
            item.add_marker(
                pytest.mark.skip(reason="on Redis Cluster with REUNITE_TEST_REDIS_CLUSTER=1")
            )
        elif params.get("database", BACKENDS[0]) != BACKENDS[0]:
            item.add_marker(
                pytest.mark.skip(reason="on Redis Cluster with one database by default")
            )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded is not None:
        _embedded.stop()
        shutil.rmtree(_embedded_dir or "", ignore_errors=True)


def clear_caches() -> None:
    """Forget cached settings, engines and sessionmakers after the environment changed."""
    from ops.platform import config, db, redis_client

    redis_client.get_redis.cache_clear()
    db.get_sessionmaker.cache_clear()
    db.get_engine.cache_clear()
    config.get_settings.cache_clear()


def _reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from ops.platform.db import make_engine

    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path, monkeypatch) -> Iterator[str]:
    """A freshly migrated database on each available backend; yields its URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reunite.db'}"
    else:
        assert POSTGRES_URL is not None
        url = POSTGRES_URL
        _reset_postgres(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("REUNITE_DATA_DIR", str(tmp_path))
    clear_caches()
    from alerts import migrate
    from ops.platform.db import get_engine

    migrate.upgrade()
    yield url
    get_engine().dispose()
    clear_caches()


@pytest.fixture(scope="session")
def redis_cluster():
    """A real 3-master Redis Cluster on loopback ports, for the whole session."""
    from tests.support.redis_cluster import CLI, SERVER, LocalCluster

    if not (shutil.which(SERVER) and shutil.which(CLI)):
        pytest.skip("no redis-server/redis-cli for the cluster (apt-get install redis-server)")
    cluster = LocalCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["single", "cluster"])
def app_redis(request) -> Iterator[redis.Redis]:
    """Reunite's Redis (REDIS_URL), flushed: the suite's single Redis, or a Redis Cluster with
    Celery's broker left on the single Redis (CELERY_BROKER_URL), as in production."""
    if request.param == "single":
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        yield client
        client.close()
        return
    from ops.platform.redis_client import connect

    cluster = request.getfixturevalue("redis_cluster")
    saved = {name: os.environ.get(name) for name in ("REDIS_URL", "CELERY_BROKER_URL")}
    os.environ.update(REDIS_URL=cluster.url, CELERY_BROKER_URL=REDIS_URL)
    clear_caches()
    client = connect(cluster.url)
    client.flushall()
    from ops.platform.redis_client import get_redis, is_cluster

    assert is_cluster(get_redis()), "Reunite's own client must be the cluster's"
    yield client
    client.close()
    # Restored here, not by monkeypatch (which would also undo the test's own patches early),
    # and before the caches go, so no later test gets a cached cluster client by accident.
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    clear_caches()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client for the suite's real Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()
