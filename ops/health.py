"""Liveness and readiness: /readyz answers 503 naming the dependency that is down."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from alerts.config import get_settings
from alerts.db import get_engine

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str]


def check_database() -> str:
    """'ok' or the error class when the database does not answer."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as exc:
        return f"down: {type(exc).__name__}"


def check_redis() -> str:
    """'ok' or the error class when Redis (the broker) does not answer."""
    client = redis.Redis.from_url(get_settings().resolved_redis_url, socket_connect_timeout=1)
    try:
        client.ping()
        return "ok"
    except redis.RedisError as exc:
        return f"down: {type(exc).__name__}"
    finally:
        client.close()


@router.get("/livez", response_model=Health)
def livez() -> Health:
    """The process is up."""
    return Health(status="ok", checks={})


@router.get("/readyz", response_model=Health)
def readyz(response: Response) -> Health:
    """The database and Redis answer; 503 otherwise."""
    checks = {"database": check_database(), "redis": check_redis()}
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ok else "unavailable", checks=checks)
