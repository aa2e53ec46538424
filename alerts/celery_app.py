"""The Celery application: one broker (Redis), queues per concern, tasks found by name."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from alerts.config import get_settings

TASK_MODULES = ["alerts.dispatch.tasks"]


def make_celery() -> Celery:
    """Celery configured from Settings; workers on any machine share the same broker."""
    settings = get_settings()
    app = Celery("reunite", broker=settings.broker_url, include=TASK_MODULES)
    app.conf.update(
        task_default_queue="default",
        task_routes={"reunite.dispatch.*": {"queue": "dispatch"}},
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        # A task unacknowledged this long is redelivered; longer than any single task runs.
        broker_transport_options={"visibility_timeout": 600},
        beat_schedule={
            "relay-outbox": {
                "task": "reunite.dispatch.relay_outbox",
                "schedule": timedelta(seconds=settings.relay_interval_seconds),
                "options": {"expires": settings.relay_interval_seconds * 5},
            },
            "expire-cases": {
                "task": "reunite.dispatch.expire_cases",
                "schedule": timedelta(seconds=60),
                "options": {"expires": 120},
            },
        },
        timezone="UTC",
    )
    return app


celery_app = make_celery()
