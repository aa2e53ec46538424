"""Hands outbox rows to the broker without letting a broker outage reach the caller."""

from __future__ import annotations

import functools

import redis

from ops.platform.celery_app import celery_app
from ops.platform.outbox import service
from ops.platform.redis_client import get_redis

# Fail fast: a row that cannot be published now stays in the outbox for the next relay.
send_now = functools.partial(celery_app.send_task, retry=False)
LOCK = "reunite:outbox-relay"


def relay_now() -> service.RelayResult:
    """Publish pending outbox rows at once (called right after a commit).

    One relay runs at a time across all processes: two relays reading the same rows would
    publish them twice (SQLite has no SKIP LOCKED). A relay waits briefly for a running one, so
    rows committed meanwhile are still published now rather than at the next beat tick.
    """
    try:
        lock = get_redis().lock(LOCK, timeout=60, blocking_timeout=5)
        acquired = lock.acquire()
    except redis.RedisError as exc:
        # The broker is this Redis: nothing can be published until it is back.
        return service.RelayResult(0, 0, f"{type(exc).__name__}: broker unavailable")
    if not acquired:
        return service.RelayResult(0, 0, "another relay is still running")
    try:
        return service.relay_pending(send_now)
    finally:
        try:
            lock.release()
        except redis.RedisError:
            pass  # expired or Redis went away; the lock times out by itself
