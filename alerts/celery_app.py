"""The Celery application: one broker (Redis), queues per concern, tasks found by name."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from alerts.config import get_settings

TASK_MODULES = [
    "alerts.dispatch.tasks",
    "geo.waves.tasks",
    "channels.tasks",
    "alerts.partners.tasks",
    "alerts.privacy.tasks",
]
# Every queue a default `reunite worker` consumes; add a queue here when a domain adds one.
QUEUES = ["dispatch", "geo", "default", "apns", "fcm", "sms", "webhook"]


def make_celery() -> Celery:
    """Celery configured from Settings; workers on any machine share the same broker."""
    settings = get_settings()
    app = Celery("reunite", broker=settings.broker_url, include=TASK_MODULES)
    app.conf.update(
        task_default_queue="default",
        task_routes={
            "reunite.dispatch.*": {"queue": "dispatch"},
            # A queue per channel: a slow provider or partner never holds up another channel.
            "reunite.channels.apns": {"queue": "apns"},
            "reunite.channels.fcm": {"queue": "fcm"},
            "reunite.channels.fcm_topics": {"queue": "fcm"},
            "reunite.channels.sms": {"queue": "sms"},
            "reunite.channels.webhook": {"queue": "webhook"},
            "reunite.partners.redeliver": {"queue": "webhook"},
            "reunite.geo.*": {"queue": "geo"},
        },
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
        beat_schedule={
            "relay-outbox": {
                "task": "reunite.dispatch.relay_outbox",
                "schedule": timedelta(seconds=settings.relay_interval_seconds),
                "options": {"expires": settings.relay_interval_seconds * 5},
            },
            "wave-tick": {
                "task": "reunite.geo.tick",
                "schedule": timedelta(seconds=settings.wave_tick_seconds),
                "options": {"expires": settings.wave_tick_seconds * 5},
            },
            "purge-silent-devices": {
                "task": "reunite.geo.purge",
                "schedule": timedelta(hours=1),
                "options": {"expires": 3600},
            },
            "expire-cases": {
                "task": "reunite.dispatch.expire_cases",
                "schedule": timedelta(seconds=60),
                "options": {"expires": 120},
            },
            # alerts/privacy: erase the child's data once a closed case passes its retention.
            "erase-closed-cases": {
                "task": "reunite.privacy.erase_due",
                "schedule": timedelta(minutes=10),
                "options": {"expires": 600},
            },
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
