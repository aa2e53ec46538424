"""The Celery application: one broker (Redis) and how every task is acknowledged and retried.

Which tasks, queues and periodic jobs exist is the composition root's business
(`alerts.bootstrap.configure_celery`); this module knows no domain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import kombu.exceptions
import redis
import sqlalchemy.exc
from celery import Celery, Task
from celery.exceptions import Reject
from celery.utils.time import get_exponential_backoff_interval

from ops.platform.config import get_settings

# What a task retries: the database, Redis or the broker being briefly away, never a bug.
# (Python's built-in ConnectionError is not among redis-py's or SQLAlchemy's errors.)
INFRASTRUCTURE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # A Redis Cluster failing over: a slot without a master, or a slot moving.
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    kombu.exceptions.OperationalError,
)
RETRY_BACKOFF_MAX_S = 60

log = logging.getLogger(__name__)


class DurableTask(Task):
    """A task whose infrastructure errors are retried by time, never by a count.

    The database, Redis or the broker being away is retried with capped exponential backoff
    and full jitter for as long as `horizon_at` allows (by default: for ever, because the work
    is the alert's own dispatch and has no one to hand it to). Past the horizon `give_up`
    accounts for the work (a channel task dead-letters its targets). A retry the broker will
    not take is never acknowledged and dropped, which is what Celery's own `retry` does
    (`Reject(requeue=False)`): the message is handed back to the broker instead, and if the
    broker is unreachable too it stays unacknowledged and is restored when the broker returns.
    """

    acks_late = True
    max_retries = None

    def horizon_at(self, args: Sequence[Any]) -> float | None:
        """Epoch seconds after which this work is given up; None retries for ever."""
        return None

    def give_up(self, exc: BaseException, args: Sequence[Any]) -> Any:
        """Account for work past its horizon (the default never runs: no horizon)."""
        raise exc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.run(*args, **kwargs)
        except INFRASTRUCTURE_ERRORS as exc:
            delay = get_exponential_backoff_interval(
                factor=1,
                retries=self.request.retries,
                maximum=RETRY_BACKOFF_MAX_S,
                full_jitter=True,
            )
            horizon = self.horizon_at(args)
            if horizon is not None and time.time() + delay > horizon:
                log.warning("%s past its retry horizon: %s", self.name, type(exc).__name__)
                return self.give_up(exc, args)
            try:
                raise self.retry(exc=exc, countdown=delay, max_retries=None)
            except Reject as rejected:
                log.warning(
                    "%s: retry not published (%s); message returned to the broker",
                    self.name,
                    type(rejected.reason).__name__,
                )
                raise Reject(rejected.reason, requeue=True) from exc


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
