"""Thin channel tasks: ids in, channels.fanout does the work, a retry is a new task.

acks_late: a worker killed mid-batch leaves its message unacknowledged, and the broker hands
it to another worker after the visibility timeout; the batch skips what was already sent.
Provider retries are not Celery retries: only the targets that need it go back on the queue,
after a backoff with jitter (channels.fanout.backoff). Celery's own retry covers only the
infrastructure (database, Redis or broker unavailable), for as long as the message's retry
horizon allows; past it the unit's open targets become dead letters (`reunite dlq replay`).
If even that cannot be written, the unit stays on the reconciler's list and is queued again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from channels import fanout, reconcile, service, status
from channels.messages import MessageId
from ops import metrics
from ops.platform.celery_app import INFRASTRUCTURE_ERRORS, DurableTask, celery_app
from ops.platform.config import get_settings
from ops.platform.redis_client import get_redis

log = logging.getLogger(__name__)


class ChannelTask(DurableTask):
    """A unit of channel work: args are (message_id, targets, attempt, first_at)."""

    def horizon_at(self, args: Sequence[Any]) -> float:
        return float(args[3]) + get_settings().channels.retry_horizon_s

    def give_up(self, exc: BaseException, args: Sequence[Any]) -> dict:
        message_id, targets, attempt = args[0], args[1], int(args[2])
        reason = f"infrastructure_{type(exc).__name__}"
        try:
            dead = fanout.give_up(CHANNEL_OF[self.name], message_id, targets, attempt, reason)
        except INFRASTRUCTURE_ERRORS as still:
            # Cannot even write the dead letters: the unit's reconciler entry stays, and the
            # reconciler queues its open targets again once the infrastructure is back.
            log.warning(
                "%s: dead letters not written (%s); left to the reconciler",
                self.name,
                type(still).__name__,
            )
            return {"dead_lettered": 0}
        return {"dead_lettered": dead}


OPTIONS = {"base": ChannelTask}


def _after(channel: str, message_id: str, first_at: float, result) -> dict:
    tally, nxt = result
    if nxt is not None:
        service.enqueue(channel, message_id, nxt.targets, nxt.attempt, first_at, nxt.countdown)
    fanout.persist_ledger(message_id, MessageId.case_of(message_id))
    client = get_redis()
    reconcile.progress(client, message_id, channel, get_settings().channels.owner_grace_s)
    status.observe_batch(client, message_id, tally.sent)
    return {
        "sent": tally.sent,
        "dead": tally.dead,
        "failed": tally.failed,
        "retrying": tally.retrying,
        "dead_lettered": tally.dead_lettered,
        "withdrawn": tally.withdrawn,
        "skipped": tally.skipped,
    }


def _devices(channel: str, message_id: str, ids: list[int], attempt: int, first_at: float):
    s = get_settings().channels
    result = fanout.run_device_batch(
        channel, message_id, ids, attempt, first_at, s, service.delivery_for
    )
    return _after(channel, message_id, first_at, result)


@celery_app.task(name="reunite.channels.apns", **OPTIONS)
def apns_batch(message_id: str, device_ids: list[int], attempt: int, first_at: float) -> dict:
    """Push one message to a batch of iOS devices."""
    return _devices("apns", message_id, device_ids, attempt, first_at)


@celery_app.task(name="reunite.channels.fcm", **OPTIONS)
def fcm_batch(message_id: str, device_ids: list[int], attempt: int, first_at: float) -> dict:
    """Push one message to a batch of Android devices."""
    return _devices("fcm", message_id, device_ids, attempt, first_at)


@celery_app.task(name="reunite.channels.sms", **OPTIONS)
def sms_batch(message_id: str, device_ids: list[int], attempt: int, first_at: float) -> dict:
    """Text one message to a batch of opted-in numbers."""
    return _devices("sms", message_id, device_ids, attempt, first_at)


@celery_app.task(name="reunite.channels.fcm_topics", **OPTIONS)
def fcm_topics(message_id: str, cells: list[str], attempt: int, first_at: float) -> dict:
    """Send one message to a batch of geo-cell FCM topics."""
    s = get_settings().channels
    result = fanout.run_topics(message_id, cells, attempt, first_at, s, service.delivery_for)
    return _after("fcm_topic", message_id, first_at, result)


@celery_app.task(name="reunite.channels.sms_broadcast", **OPTIONS)
def sms_broadcast(message_id: str, languages: list[str], attempt: int, first_at: float) -> dict:
    """Ask the SMS carrier to broadcast one message to the whole area (per language)."""
    s = get_settings().channels
    result = fanout.run_area_broadcast(
        message_id,
        languages,
        attempt,
        first_at,
        s,
        service.delivery_for,
        service.broadcast_polygons,
    )
    return _after("sms_broadcast", message_id, first_at, result)


@celery_app.task(name="reunite.channels.webhook", **OPTIONS)
def webhook(message_id: str, endpoint_ids: list[int], attempt: int, first_at: float) -> dict:
    """Deliver one message's signed event to one partner endpoint."""
    s = get_settings().channels
    [endpoint_id] = endpoint_ids
    result = fanout.run_webhook(
        message_id, int(endpoint_id), attempt, first_at, s, service.delivery_for
    )
    return _after("webhook", message_id, first_at, result)


CHANNEL_OF = {
    apns_batch.name: "apns",
    fcm_batch.name: "fcm",
    sms_batch.name: "sms",
    fcm_topics.name: "fcm_topic",
    sms_broadcast.name: "sms_broadcast",
    webhook.name: "webhook",
}


@celery_app.task(name="reunite.channels.reconcile", acks_late=True, max_retries=0)
def reconcile_deliveries() -> int:
    """Queue again the targets of units past their deadline (lost or stalled); beat runs it."""
    requeued = reconcile.reconcile(
        get_redis(), service.requeue, get_settings().channels.owner_grace_s
    )
    for r in requeued:
        metrics.RECONCILED.labels(r.channel).inc(r.targets)
        log.warning(
            "reconciler re-queued %d %s targets of message %s", r.targets, r.channel, r.message_id
        )
    return sum(r.targets for r in requeued)
