"""Thin Celery tasks for partner webhooks: ids in, alerts.partners.webhooks does the work."""

from __future__ import annotations

from alerts.partners import webhooks
from ops.platform.celery_app import DurableTask, celery_app


@celery_app.task(name=webhooks.REDELIVER_TASK, base=DurableTask)
def redeliver(
    message_id: str, endpoint_id: int, attempt: int | None = None, first_at: float | None = None
) -> str:
    """Send one event to one partner endpoint again, as the partner asked."""
    return webhooks.redeliver(message_id, endpoint_id, attempt, first_at)
