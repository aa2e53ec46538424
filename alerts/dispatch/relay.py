"""Hands outbox rows to the broker without letting a broker outage reach the caller."""

from __future__ import annotations

import functools

from alerts.celery_app import celery_app
from alerts.dispatch import service

# Fail fast: a row that cannot be published now stays in the outbox for the next relay.
send_now = functools.partial(celery_app.send_task, retry=False)


def relay_now() -> service.RelayResult:
    """Publish pending outbox rows at once (called right after a commit)."""
    return service.relay_pending(send_now)
