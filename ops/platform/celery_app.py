"""The Celery application: one broker (Redis) and how every task is acknowledged and retried.

Which tasks, queues and periodic jobs exist is the composition root's business
(`alerts.bootstrap.configure_celery`); this module knows no domain.
"""

from __future__ import annotations

import kombu.exceptions
import redis
import sqlalchemy.exc
from celery import Celery

from ops.platform.config import get_settings

# What a task retries: the database, Redis or the broker being briefly away, never a bug.
# (Python's built-in ConnectionError is not among redis-py's or SQLAlchemy's errors.)
INFRASTRUCTURE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


def make_celery() -> Celery:
    """Celery configured from Settings; workers on any machine share the same broker."""
    settings = get_settings()
    app = Celery("reunite", broker=settings.broker_url)
    app.conf.update(
        task_default_queue="default",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        # A task unacknowledged this long is redelivered; longer than any single task runs
        # (a batch, or a countdown retry held by a worker). Shorter recovers a killed worker's
        # batch sooner; see the trade-off in docs/PERFORMANCE.md.
        broker_transport_options={
            "visibility_timeout": settings.channels.visibility_timeout_s,
            "unacked_restore_interval": min(10, settings.channels.visibility_timeout_s // 4 or 1),
            "unacked_restore_throttle": 1,
            # The sweep holds a Redis mutex that expires after 300 s by default: a worker killed
            # inside a sweep would block every other worker's recovery for five minutes.
            "unacked_mutex_expire": 10,
        },
        timezone="UTC",
        # ops.logging configures logging (setup_logging signal); Celery keeps its hands off.
        worker_hijack_root_logger=False,
        # Task events feed Flower; remote control stays on so Flower can also enable them.
        worker_send_task_events=settings.worker_events,
        task_send_sent_event=settings.worker_events,
    )
    return app


celery_app = make_celery()

import ops.celery_hooks  # noqa: E402,F401  (signal handlers: logging, case ids, heartbeats)
