"""Thin Celery tasks for the wave engine: ids in, geo.waves.service does the work."""

from __future__ import annotations

import h3
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError as DatabaseError

from alerts.celery_app import celery_app
from alerts.db import session_scope, utcnow
from alerts.dispatch import relay
from alerts.dispatch import service as dispatch
from geo.waves import service
from ops import metrics

RETRY = {
    "acks_late": True,
    "autoretry_for": (BrokerError, DatabaseError, ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 50,
}


@celery_app.task(name=service.START_WAVE, **RETRY)
def start_wave(outbox_id: int, wave_id: int) -> int:
    """Create the wave's message and queue a targeting task per non-empty shard."""
    with session_scope() as session:
        start = service.begin_wave(session, wave_id)
        if start is None:
            dispatch.complete(session, outbox_id)
    if start is None:
        return 0
    metrics.WAVES_STARTED.inc()
    # Queued after the commit; a redelivery re-queues them all and the claims make that harmless.
    for shard in start.shards:
        celery_app.send_task(
            service.TARGET_SHARD,
            args=[wave_id, shard.cell, shard.interior],
            task_id=f"shard-{wave_id}-{shard.cell:x}",
        )
    from channels import service as channels

    if start.fcm_topics:
        channels.fan_out_topics(start.message_id, [h3.int_to_str(c) for c in start.topic_cells])
    channels.broadcast_area(start.message_id, start.languages)
    channels.fan_out_partners(start.message_id)
    with session_scope() as session:
        service.finish_wave(session, wave_id)
        dispatch.complete(session, outbox_id)
    return len(start.shards)


@celery_app.task(name=service.TARGET_SHARD, **RETRY)
def target_shard(wave_id: int, cell: int, interior: bool) -> int:
    """Claim one shard's not-yet-alerted devices and hand them to the channels."""
    with session_scope() as session, metrics.TARGETING_SECONDS.time():
        claimed = service.target_shard(session, wave_id, cell, interior)
        message_id = service.message_of(session, wave_id)
    metrics.SHARDS_TARGETED.inc()
    metrics.DEVICES_TARGETED.inc(len(claimed))
    if len(claimed) and message_id:
        from channels import service as channels

        channels.fan_out_devices(
            message_id, claimed.tolist(), fcm_via_topics=service.uses_fcm_topics(wave_id)
        )
    return len(claimed)


@celery_app.task(name=service.NOTIFY_ALERTED, **RETRY)
def notify_alerted(outbox_id: int, case_id: str, message_id: str) -> int:
    """Send an update or closing notice to every device alerted for the case, and partners."""
    from channels import service as channels

    ids = service.alerted(case_id)
    # Partner issue: operators choose whether the closing notice is pushed to alerted devices
    # (partners always get it). Message ids are "case:kind:wave:n".
    from alerts.config import get_settings

    if message_id.split(":")[1] in ("resolved", "cancelled"):
        if not get_settings().closing_push_to_devices:
            ids = ids[:0]
    for start in range(0, len(ids), 10_000):
        channels.fan_out_devices(message_id, ids[start : start + 10_000].tolist())
    channels.fan_out_partners(message_id)
    with session_scope() as session:
        dispatch.complete(session, outbox_id)
    return len(ids)


@celery_app.task(name="reunite.geo.tick", acks_late=True, max_retries=0)
def tick() -> int:
    """Queue every wave whose time has come, then relay the outbox at once."""
    with session_scope() as session:
        queued = service.queue_due(session, utcnow())
    if queued:
        relay.relay_now()
    return queued


@celery_app.task(name="reunite.geo.purge", acks_late=True, max_retries=0)
def purge() -> int:
    """Forget devices silent past the retention and compact the location index."""
    from datetime import timedelta

    from alerts.config import get_settings
    from geo.devices import service as devices

    cutoff = utcnow() - timedelta(days=get_settings().device_retention_days)
    index = devices.location_index()
    with session_scope() as session:
        ids = devices.purge_silent(session, cutoff)
    index.remove(ids)
    index.purge(cutoff)
    return len(ids)
