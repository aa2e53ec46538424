"""Every task retries each kind of infrastructure error, by its real exception class.

Before, the wave tasks listed Python's built-in ConnectionError, which no redis-py error is:
a Redis blip in a shard task failed the task, and its devices were never alerted.
"""

from __future__ import annotations

import time

import kombu.exceptions
import pytest
import redis
import sqlalchemy.exc

from alerts.dispatch import flows
from alerts.dispatch import tasks as dispatch_tasks
from channels import fanout
from channels import tasks as channel_tasks

ERRORS = [
    redis.exceptions.ConnectionError("Redis went away"),
    redis.exceptions.TimeoutError("Redis timed out"),
    sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is down")),
    kombu.exceptions.OperationalError("broker unreachable"),
]


def failing_once(error: Exception, result):
    calls: list[int] = []

    def work(*_args, **_kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return result

    return work, calls


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__module__ + "." + type(e).__name__)
def test_shard_task_retries_the_infrastructure_error(error, monkeypatch):
    work, calls = failing_once(error, 7)
    monkeypatch.setattr(flows, "run_shard", work)
    result = dispatch_tasks.target_shard.apply(args=[1, 0x85, True])
    assert (result.status, result.result, len(calls)) == ("SUCCESS", 7, 2)


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__module__ + "." + type(e).__name__)
def test_device_batch_task_retries_the_infrastructure_error(error, monkeypatch):
    work, calls = failing_once(error, (fanout.Tally(sent=1), None))
    monkeypatch.setattr(fanout, "run_device_batch", work)
    monkeypatch.setattr(fanout, "persist_ledger", lambda *_: None)
    monkeypatch.setattr(channel_tasks.status, "observe_batch", lambda *_: None)
    # Within the retry horizon (first attempt now): the error is retried.
    result = channel_tasks.apns_batch.apply(args=["c:alert:0:1", [1], 0, time.time()])
    assert (result.status, result.result["sent"], len(calls)) == ("SUCCESS", 1, 2)
