"""Liveness and readiness: /readyz answers 503 naming the dependency that is down.

Readiness covers the database, Redis, the Celery broker and whether any worker beat recently
(ops.status heartbeats; `ready_requires_workers=false` reports workers without failing on them).
"""

from __future__ import annotations

import redis
from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ops.platform import redis_client
from ops.platform.config import get_settings
from ops.platform.db import get_engine

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Whether the process (livez) or its dependencies (readyz) are fit to serve."""

    status: str = Field(description="ok, or unavailable (with a 503)", examples=["ok"])
    checks: dict[str, str] = Field(
        description="readyz: database, redis, broker and workers, each `ok`, `ok (N)` (workers "
        "that beat recently) or `down: <reason>`; livez: empty",
        examples=[{"database": "ok", "redis": "ok", "broker": "ok", "workers": "ok (2)"}],
    )


def check_database() -> str:
    """'ok' or the error class when the database does not answer."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as exc:
        return f"down: {type(exc).__name__}"


def check_redis() -> str:
    """'ok' or the error class when Redis (REDIS_URL, a server or a cluster) does not answer."""
    client = redis_client.connect(get_settings().resolved_redis_url, socket_connect_timeout=1)
    try:
        client.ping()
        return "ok"
    except redis.RedisError as exc:
        return f"down: {type(exc).__name__}"
    finally:
        client.close()


def check_broker() -> str:
    """'ok' or the error class when the Celery broker does not take a connection."""
    from kombu.exceptions import OperationalError as BrokerError

    from ops.platform.celery_app import celery_app

    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=1)
        return "ok"
    except (BrokerError, OSError, redis.RedisError) as exc:
        return f"down: {type(exc).__name__}"


def check_workers() -> str:
    """'ok (N)' when workers beat within the heartbeat TTL, else why not."""
    from ops import status

    client = redis_client.connect(get_settings().resolved_redis_url, socket_connect_timeout=1)
    try:
        seen = status.heartbeats(client)
    except redis.RedisError as exc:
        return f"down: {type(exc).__name__}"
    finally:
        client.close()
    if not seen:
        return f"down: no worker seen in {status.HEARTBEAT_TTL_S:g}s"
    return f"ok ({len(seen)})"


@router.get("/livez", response_model=Health)
def livez() -> Health:
    """The process is up."""
    return Health(status="ok", checks={})


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A required dependency is down"}},
)
def readyz(response: Response) -> Health:
    """The database, Redis and the broker answer and a worker beat recently; 503 otherwise."""
    checks = {
        "database": check_database(),
        "redis": check_redis(),
        "broker": check_broker(),
        "workers": check_workers(),
    }
    required = ["database", "redis", "broker"]
    if get_settings().ready_requires_workers:
        required.append("workers")
    ok = all(checks[name].startswith("ok") for name in required)
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ok else "unavailable", checks=checks)
