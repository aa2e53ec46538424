"""Thin Celery tasks: ids in, the service does the work."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from alerts.celery_app import celery_app
from alerts.db import session_scope
from alerts.dispatch import relay, service


@celery_app.task(
    name="reunite.dispatch.case",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=20,
)
def dispatch_case(outbox_id: int, case_id: str, kind: str) -> bool:
    """Start whatever a case transition sets in motion (waves, closures)."""
    with session_scope() as session:
        ran = service.run_dispatch(session, outbox_id, case_id, kind)
    # Handlers queue their follow-up work as outbox rows; hand them over now, not next tick.
    relay.relay_now()
    return ran


@celery_app.task(name="reunite.dispatch.relay_outbox", acks_late=True, max_retries=0)
def relay_outbox() -> int:
    """Publish outbox rows that the API could not hand to the broker itself."""
    return relay.relay_now().published


@celery_app.task(name="reunite.dispatch.expire_cases", acks_late=True, max_retries=0)
def expire_cases() -> int:
    """Close active alerts that outlived their lifetime."""
    from alerts.cases import service as cases

    with session_scope() as session:
        return cases.expire_due(session)
