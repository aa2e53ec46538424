"""Token bucket, concurrency budget, breaker (real Redis) and the backoff rule."""

from __future__ import annotations

import time

import pytest

from channels import pacing
from channels.fanout import backoff
from ops.platform.channel_settings import ChannelSettings

# Buckets, budgets and breakers are shared by every worker: prove them on a cluster too (~1 s).
pytestmark = pytest.mark.cluster_smoke


def test_bucket_grants_burst_then_paces_at_rate(app_redis):
    bucket = pacing.TokenBucket(app_redis, f"t{time.time()}", rate=100, burst=10)
    granted, wait = bucket.try_take(25)
    assert granted == 10 and 0 < wait <= 0.16
    time.sleep(0.1)
    granted, _ = bucket.try_take(25)
    assert 8 <= granted <= 12, "about rate x elapsed tokens come back"


def test_budget_refuses_past_its_limit_and_frees_on_release(app_redis):
    budget = pacing.Budget(app_redis, f"b{time.time()}", limit=1, lease_s=5)
    holder = budget.acquire()
    assert holder and budget.acquire() is None
    budget.release(holder)
    assert budget.acquire() is not None


def test_breaker_opens_after_threshold_then_lets_one_probe_through(app_redis):
    breaker = pacing.Breaker(app_redis, f"c{time.time()}", threshold=2, open_s=0.2)
    breaker.record(False)
    assert breaker.allow().allowed
    assert breaker.record(False) is pacing.BreakerState.OPEN
    assert not breaker.allow().allowed
    time.sleep(0.25)
    probe = breaker.allow()
    assert probe.allowed and probe.state is pacing.BreakerState.HALF_OPEN
    assert not breaker.allow().allowed, "one probe at a time"
    assert breaker.record(True) is pacing.BreakerState.CLOSED


def test_consecutive_timeouts_open_the_breaker_before_the_failure_threshold(app_redis):
    breaker = pacing.Breaker(app_redis, f"t{time.time()}", 5, 30.0, timeout_threshold=2)
    assert breaker.record(False, timed_out=True) is pacing.BreakerState.CLOSED
    assert breaker.record(False, timed_out=True) is pacing.BreakerState.OPEN


def test_an_answer_between_timeouts_resets_the_timeout_count(app_redis):
    breaker = pacing.Breaker(app_redis, f"r{time.time()}", 5, 30.0, timeout_threshold=2)
    breaker.record(False, timed_out=True)
    breaker.record(True)
    assert breaker.record(False, timed_out=True) is pacing.BreakerState.CLOSED
    assert breaker.record(False) is pacing.BreakerState.CLOSED, "a 500 is not a timeout"


def test_backoff_grows_with_jitter_and_honours_retry_after():
    s = ChannelSettings(retry_base_s=1, retry_max_delay_s=60)
    assert all(0.5 <= backoff(s, 0, None) <= 1 for _ in range(50))
    assert all(4 <= backoff(s, 3, None) <= 8 for _ in range(50))
    assert backoff(s, 0, 30) == 30
    assert backoff(s, 10, None) <= 60 and backoff(s, 0, 600) == 60


def test_a_hold_gives_no_token_to_anyone_until_it_ends(app_redis):
    """A throttled SMPP part holds the bind's bucket for every worker sharing it."""
    name = f"h{time.time()}"
    bucket = pacing.TokenBucket(app_redis, name, rate=50, burst=1)
    other_worker = pacing.TokenBucket(app_redis, name, rate=50, burst=1)
    assert bucket.try_take(1)[0] == 1
    bucket.hold(0.3)
    granted, wait = other_worker.try_take(1)
    assert granted == 0 and 0.25 <= wait <= 0.35
    time.sleep(0.35)
    assert other_worker.try_take(1)[0] == 1


def test_bucket_pacer_spaces_requests_at_the_rate(app_redis):
    import asyncio

    pacer = pacing.BucketPacer(pacing.TokenBucket(app_redis, f"p{time.time()}", 20, 1))

    async def take(n: int) -> float:
        started = time.monotonic()
        for _ in range(n):
            await pacer.take()
        return time.monotonic() - started

    elapsed = asyncio.run(take(11))
    assert 0.4 <= elapsed <= 1.0, f"10 tokens after the first at 20/s took {elapsed:.2f}s"
