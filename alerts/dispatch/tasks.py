"""Thin Celery tasks for the dispatch flow: ids in, `alerts.dispatch.flows` does the work.

Task names are part of the wire format (queued work survives a deploy): the wave tasks keep
their `reunite.geo.*` names and queue.
"""

from __future__ import annotations

from alerts.cases import service as cases
from alerts.dispatch import flows, service
from geo import late
from ops.platform.celery_app import DurableTask, celery_app
from ops.platform.db import session_scope
from ops.platform.outbox import relay

# The dispatch and wave tasks are the alert's own work, backed by outbox rows and shard
# records: infrastructure errors are retried for as long as they last (DurableTask).
WAVE_RETRY = {"base": DurableTask}


@celery_app.task(name=service.DISPATCH_TASK, base=DurableTask)
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
    with session_scope() as session:
        return cases.expire_due(session)


@celery_app.task(name=flows.START_WAVE, **WAVE_RETRY)
def start_wave(outbox_id: int, wave_id: int) -> int:
    """Create the wave's message and queue a targeting task per non-empty shard."""
    return flows.start_wave(outbox_id, wave_id)


@celery_app.task(name=flows.TARGET_SHARD, **WAVE_RETRY)
def target_shard(wave_id: int, cell: int, interior: bool) -> int:
    """Claim one shard's not-yet-alerted devices and hand them to the channels."""
    return flows.run_shard(wave_id, cell, interior)


@celery_app.task(name=late.LATE_ARRIVALS, **WAVE_RETRY)
def late_arrivals(token: str, device_ids: str, cases: list[list]) -> int:
    """Alert devices that entered a live wave's area after it started (once each)."""
    return flows.alert_late_arrivals(token, device_ids, cases)


@celery_app.task(name=flows.NOTIFY_ALERTED, **WAVE_RETRY)
def notify_alerted(outbox_id: int, case_id: str, message_id: str) -> int:
    """Send an update or closing notice to every device alerted for the case, and partners."""
    return flows.notify_alerted(outbox_id, case_id, message_id)


@celery_app.task(name="reunite.geo.reconcile_shards", acks_late=True, max_retries=0)
def reconcile_shards() -> int:
    """Send again shard tasks past their deadline (lost, or their worker died)."""
    return flows.reconcile_shards()


@celery_app.task(name="reunite.geo.tick", acks_late=True, max_retries=0)
def tick() -> int:
    """Queue every wave whose time has come, then relay the outbox at once."""
    queued = flows.tick()
    if queued:
        relay.relay_now()
    return queued
