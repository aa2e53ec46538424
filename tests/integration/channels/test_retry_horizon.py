"""Infrastructure errors are retried by time, not by count, and never drop the work.

Before, a channel batch retried a database, Redis or broker error 10 times (about 108 s with
jitter), then failed and was acknowledged: a 240 s PostgreSQL outage lost 6,580 of 20,000
devices with no dead letter. And when the retry itself could not be published, Celery turned
it into `Reject(requeue=False)`, so the broker deleted the message.
"""

from __future__ import annotations

import time
import uuid

import kombu.exceptions
import sqlalchemy.exc
from celery.app.trace import build_tracer
from celery.exceptions import Reject
from sqlalchemy import select

from channels import fanout, ledger, reconcile
from channels import tasks as channel_tasks
from channels.ledger import Ledger, Target
from channels.models import DeadLetter
from ops.platform.celery_app import celery_app
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis
from tests.integration.channels import fanout_env as fx

DB_DOWN = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is down"))
HORIZON = 20.0  # fx.channel_settings()


def _targeted_sms_batch(monkeypatch, size: int = 5) -> tuple[str, int, list[int]]:
    fx.apply(monkeypatch, fx.channel_settings())
    case_id = fx.make_case()
    partner = fx.make_partner("CarrierApp")
    ids = list(
        fx.add_devices(partner, "sms", [f"+8613900000{i:03d}" for i in range(size)]).values()
    )
    message_id = fx.new_message(case_id)
    Ledger(get_redis(), message_id, "sms").target([Target(i, partner) for i in ids])
    return message_id, partner, ids


def _failing(error: Exception, calls: list[int]):
    def work(*_args, **_kwargs):
        calls.append(1)
        raise error

    return work


def test_an_error_past_the_retry_horizon_dead_letters_the_open_targets(
    database, redis_client, monkeypatch
):
    redis_client.flushdb()
    message_id, partner, ids = _targeted_sms_batch(monkeypatch)
    # Two of the five were sent before the database went away.
    Ledger(redis_client, message_id, "sms").move(
        [Target(i, partner) for i in ids[:2]], ledger.State.SENT, "sent"
    )
    calls: list[int] = []
    monkeypatch.setattr(fanout, "run_device_batch", _failing(DB_DOWN, calls))

    first_at = time.time() - HORIZON - 1
    result = channel_tasks.sms_batch.apply(args=[message_id, ids, 2, first_at])

    assert (result.status, result.result, len(calls)) == ("SUCCESS", {"dead_lettered": 3}, 1)
    with session_scope() as s:
        letters = s.scalars(select(DeadLetter).where(DeadLetter.message_id == message_id)).all()
    assert [
        (d.channel, d.reason, sorted(t[0] for t in d.targets), d.attempts) for d in letters
    ] == [("sms", "infrastructure_OperationalError", sorted(ids[2:]), 3)]
    counts = ledger.live_counts(redis_client, message_id)[("sms", partner)]
    assert (counts["sent"], counts["dead_lettered"], counts["targeted"]) == (2, 3, 5)


def test_within_the_horizon_the_error_is_retried_past_the_old_count_of_ten(
    database, redis_client, monkeypatch
):
    redis_client.flushdb()
    message_id, _partner, ids = _targeted_sms_batch(monkeypatch)
    calls: list[int] = []

    def work(*_args, **_kwargs):
        calls.append(1)
        if len(calls) <= 12:
            raise DB_DOWN
        return fanout.Tally(sent=len(ids)), None

    monkeypatch.setattr(fanout, "run_device_batch", work)
    monkeypatch.setattr("ops.platform.celery_app.get_exponential_backoff_interval", lambda **_: 0)
    result = channel_tasks.sms_batch.apply(args=[message_id, ids, 0, time.time()])

    assert (result.status, len(calls)) == ("SUCCESS", 13)


def test_dead_letters_that_cannot_be_written_are_left_to_the_reconciler(
    database, redis_client, monkeypatch
):
    redis_client.flushdb()
    message_id, _partner, ids = _targeted_sms_batch(monkeypatch)
    reconcile.expect(redis_client, message_id, "sms", 0.0)  # as enqueue does
    monkeypatch.setattr(fanout, "run_device_batch", _failing(DB_DOWN, []))
    monkeypatch.setattr(fanout, "give_up", _failing(DB_DOWN, []))

    result = channel_tasks.sms_batch.apply(args=[message_id, ids, 0, time.time() - HORIZON - 1])

    assert (result.status, result.result) == ("SUCCESS", {"dead_lettered": 0})
    requeued: list[tuple[str, str, list]] = []
    done = reconcile.reconcile(
        redis_client, lambda *unit: requeued.append(unit), 30.0, now=time.time() + 1
    )
    assert [(r.message_id, r.channel, r.targets) for r in done] == [(message_id, "sms", 5)]
    assert requeued == [("sms", message_id, sorted(ids))]


def test_a_retry_the_broker_refuses_goes_back_to_the_broker_not_the_bin(
    database, redis_client, monkeypatch
):
    """Run the task as the worker does (not eagerly), with the broker refusing the retry."""
    redis_client.flushdb()
    message_id, _partner, ids = _targeted_sms_batch(monkeypatch)
    monkeypatch.setattr(fanout, "run_device_batch", _failing(DB_DOWN, []))

    def broker_down(*_args, **_kwargs):
        raise kombu.exceptions.OperationalError("Error 111 connecting to redis")

    monkeypatch.setattr("celery.canvas.Signature.apply_async", broker_down)
    task = channel_tasks.sms_batch
    trace = build_tracer(task.name, task, eager=False, propagate=False, app=celery_app)
    task_id = str(uuid.uuid4())
    request = {"id": task_id, "retries": 0, "delivery_info": {"routing_key": "sms"}}

    outcome = trace(task_id, [message_id, ids, 0, time.time()], {}, request)

    assert outcome.info.state == "REJECTED"
    assert isinstance(outcome.info.retval, Reject)
    assert outcome.info.retval.requeue is True
