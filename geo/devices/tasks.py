"""Thin Celery tasks for the device registry."""

from __future__ import annotations

from datetime import timedelta

from geo.devices import service as devices
from ops.platform.celery_app import celery_app
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import session_scope


@celery_app.task(name="reunite.geo.purge", acks_late=True, max_retries=0)
def purge() -> int:
    """Forget devices silent past the retention and compact the location index."""
    cutoff = utcnow() - timedelta(days=get_settings().device_retention_days)
    index = devices.location_index()
    with session_scope() as session:
        ids = devices.purge_silent(session, cutoff)
    index.remove(ids)
    index.purge(cutoff)
    return len(ids)


@celery_app.task(name="reunite.geo.compact_due", acks_late=True, max_retries=0)
def compact_due() -> int:
    """Compact the index shards whose uncompacted tail passed the threshold since the last run."""
    return devices.location_index().compact_due()
