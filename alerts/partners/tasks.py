"""Thin Celery tasks for partner webhooks: ids in, alerts.partners.webhooks does the work."""

from __future__ import annotations

from alerts.partners import webhooks
from ops.platform.celery_app import INFRASTRUCTURE_ERRORS, celery_app


@celery_app.task(
    name=webhooks.REDELIVER_TASK,
    acks_late=True,
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def redeliver(
    message_id: str, endpoint_id: int, attempt: int | None = None, first_at: float | None = None
) -> str:
    """Send one event to one partner endpoint again, as the partner asked."""
    return webhooks.redeliver(message_id, endpoint_id, attempt, first_at)
