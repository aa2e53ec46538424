"""The composition root: what runs where, and which domain implements each port.

The API (`alerts.app.create_app`), every worker and beat (`reunite worker|beat|serve`), the
CLI and the tests call `wire()` once at start-up. It

- gives Celery its task modules, queues, routes and periodic jobs,
- maps each case event class to the flow steps that handle it (`HANDLERS`),
- installs the domain implementations of the channels' ports (devices, alert content,
  partner audience) and the fan-out metrics' probes.

Nothing below `alerts` knows these wires exist.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from alerts import models  # noqa: F401  (every table known before the first flush)
from alerts.cases import content
from alerts.cases import service as cases
from alerts.cases.lifecycle import (
    CaseApproved,
    CaseCancelled,
    CaseExpired,
    CaseResolved,
    CaseUpdated,
)
from alerts.dispatch import flows, numbers
from alerts.dispatch import service as dispatch
from alerts.feeds import service as feeds
from alerts.feeds import signing
from channels import runtime
from channels import status as channel_status
from channels.messages import MessageId
from geo.devices import service as devices
from ops import celery_hooks, metrics
from ops.platform.celery_app import celery_app
from ops.platform.config import get_settings

TASK_MODULES = [
    "alerts.dispatch.tasks",
    "geo.devices.tasks",
    "channels.tasks",
    "alerts.partners.tasks",
    "alerts.privacy.tasks",
    "ops.platform.audit.tasks",
]
# Every queue a default `reunite worker` consumes; add a queue here when a domain adds one.
QUEUES = ["dispatch", "geo", "default", "apns", "fcm", "sms", "webhook"]
WEBHOOK_QUEUE = "webhook"  # `reunite webhooks` serves it on a thread pool
ROUTES = {
    "reunite.dispatch.*": {"queue": "dispatch"},
    # A queue per channel: a slow provider or partner never holds up another channel.
    "reunite.channels.apns": {"queue": "apns"},
    "reunite.channels.fcm": {"queue": "fcm"},
    "reunite.channels.fcm_topics": {"queue": "fcm"},
    "reunite.channels.sms": {"queue": "sms"},
    "reunite.channels.webhook": {"queue": "webhook"},
    "reunite.partners.redeliver": {"queue": "webhook"},
    "reunite.geo.*": {"queue": "geo"},
}

# Case event -> flow steps, in order. The outbox names the event by its kind string
# (alerts.dispatch.service.KINDS); the flow steps re-read the case themselves.
HANDLERS: dict[type, list[dispatch.Handler]] = {
    CaseApproved: [flows.case_approved],
    CaseUpdated: [flows.case_updated],
    CaseResolved: [flows.case_resolved],
    CaseCancelled: [flows.case_cancelled],
    CaseExpired: [flows.case_expired],
}


def configure_celery(app: Celery) -> None:
    """Tasks, queues, routes and the beat schedule."""
    settings = get_settings()
    app.conf.update(
        include=TASK_MODULES,
        task_routes=ROUTES,
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
            # Phones report every few minutes: shards whose log tail grew past its compacted
            # head are compacted within seconds, not at the hourly purge.
            "compact-due-shards": {
                "task": "reunite.geo.compact_due",
                "schedule": timedelta(seconds=settings.index_compact_interval_seconds),
                "options": {"expires": settings.index_compact_interval_seconds * 5},
            },
            "purge-silent-devices": {
                "task": "reunite.geo.purge",
                "schedule": timedelta(hours=1),
                "options": {"expires": 3600},
            },
            # channels.reconcile: queue again what a lost or stalled unit left open.
            "reconcile-deliveries": {
                "task": "reunite.channels.reconcile",
                "schedule": timedelta(seconds=settings.channels.reconcile_interval_s),
                "options": {"expires": settings.channels.reconcile_interval_s * 2},
            },
            "reconcile-shards": {
                "task": "reunite.geo.reconcile_shards",
                "schedule": timedelta(seconds=settings.channels.reconcile_interval_s),
                "options": {"expires": settings.channels.reconcile_interval_s * 2},
            },
            "expire-cases": {
                "task": "reunite.dispatch.expire_cases",
                "schedule": timedelta(seconds=60),
                "options": {"expires": 120},
            },
            # ops/platform/audit: a signed checkpoint of the chain head, outside the database.
            "audit-checkpoint": {
                "task": "reunite.audit.checkpoint",
                "schedule": timedelta(seconds=settings.audit_checkpoint_interval_s),
                "options": {"expires": settings.audit_checkpoint_interval_s * 2},
            },
            # alerts/privacy: erase the child's data once a closed case passes its retention.
            "erase-closed-cases": {
                "task": "reunite.privacy.erase_due",
                "schedule": timedelta(minutes=10),
                "options": {"expires": 600},
            },
        },
    )


def _case_of_message(message_id: str) -> str | None:
    try:
        return MessageId.parse(message_id).case_id
    except ValueError:
        return None


def wire() -> Celery:
    """Connect every domain to the ports below it; idempotent. Returns the Celery app."""
    # Unusable CAP signing keys stop every process now, not the first alert's publication.
    signing.check(get_settings())
    configure_celery(celery_app)
    dispatch.handlers.clear()
    dispatch.handlers.update({event: list(steps) for event, steps in HANDLERS.items()})
    runtime.wire(
        runtime.Ports(
            devices=devices,
            alerts=content.CaseAlerts(),
            audience=feeds.PartnerAudience(),
            progress=flows.DispatchProgress(),
        )
    )
    metrics.watch_queues(QUEUES)
    metrics.register_gauges(cases.state_gauges)
    metrics.register_gauges(channel_status.gauges)
    metrics.register_gauges(numbers.gauges)
    celery_hooks.case_of_message = _case_of_message
    return celery_app
