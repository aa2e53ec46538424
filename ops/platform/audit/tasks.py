"""The audit chain's periodic checkpoint (beat): the head, signed, written outside the database."""

from __future__ import annotations

from ops.platform.audit import service
from ops.platform.celery_app import celery_app
from ops.platform.db import session_scope


@celery_app.task(name="reunite.audit.checkpoint", acks_late=True, max_retries=0)
def checkpoint() -> int:
    """Append the chain head to the checkpoint file; 0 when it was already there."""
    with session_scope() as session:
        point = service.checkpoint(session)
    return point.seq if point is not None else 0
