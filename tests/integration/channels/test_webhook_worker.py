"""Partner webhooks on their own thread-pool worker: hanging partners cannot starve the rest.

Before, webhooks shared the prefork processes: each attempt to a hanging partner held a whole
process for the 10 s timeout, and a healthy partner's first events waited 10-12 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from channels import pacing, service
from ops.peers import keys
from ops.peers import webhook as webhook_sink
from tests.integration.channels import fanout_env as fx
from tests.integration.channels.test_fanout_partners import partners, register

pytestmark = pytest.mark.slow


@contextmanager
def webhooks_worker(env: dict[str, str], log: Path) -> Iterator[None]:
    """`reunite webhooks` (the thread-pool worker) until the block ends."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "webhooks", "--concurrency", "16"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        fx.wait_until(lambda: b"ready" in log.read_bytes(), timeout=60, what="worker start")
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


TIMEOUT_S = 3.0


def test_healthy_partner_is_served_at_once_while_three_partners_hang(
    database, tmp_path, redis_client, monkeypatch
):
    redis_client.flushdb()
    secret = keys.make_webhook_secret()
    channels_json = fx.apply(monkeypatch, fx.channel_settings(breaker_failures=50))
    case_id = fx.make_case()
    hanging = {f"hang{i}": webhook_sink.WebhookReceiver(secret=secret, hang_s=6.0) for i in "abc"}
    healthy = webhook_sink.WebhookReceiver(secret=secret)
    with partners(**hanging, healthy=healthy) as eps:
        for name in hanging:
            register(name, eps[name][1], secret, max_concurrency=4, timeout_s=TIMEOUT_S)
        register("Healthy", eps["healthy"][1], secret, timeout_s=TIMEOUT_S)
        messages = [fx.new_message(case_id, wave=w) for w in range(1, 5)]
        env = fx.worker_env(database, tmp_path, channels_json)
        with webhooks_worker(env, tmp_path / "webhooks.log"):
            start = time.monotonic()
            for m in messages:
                assert service.fan_out_partners(m) == 4
            fx.wait_until(lambda: len(healthy.events) == 4, timeout=30, what="healthy events")
            healthy_s = time.monotonic() - start

    print(f"webhooks: healthy partner served in {healthy_s:.2f} s while 3 partners hang")
    # With the 12 hanging requests on prefork processes this would take several timeouts.
    assert healthy_s < TIMEOUT_S, f"a hanging partner delayed a healthy one ({healthy_s:.2f} s)"


def test_a_hanging_partner_trips_its_breaker_within_one_timeout_round(
    database, tmp_path, redis_client, monkeypatch
):
    """Before, the breaker needed 5 consecutive failures: at 2 concurrent 3 s timeouts that was
    9 s of held slots and more for the queued events behind them. Two timeouts now open it."""
    redis_client.flushdb()
    secret = keys.make_webhook_secret()
    channels_json = fx.apply(monkeypatch, fx.channel_settings(breaker_failures=5))
    case_id = fx.make_case()
    hanging = webhook_sink.WebhookReceiver(secret=secret, hang_s=10.0)
    with partners(hang=hanging) as eps:
        endpoint_id = register("Hang", eps["hang"][1], secret, max_concurrency=2, timeout_s=3.0)
        messages = [fx.new_message(case_id, wave=w) for w in range(1, 9)]
        env = fx.worker_env(database, tmp_path, channels_json)
        with webhooks_worker(env, tmp_path / "webhooks.log"):
            breaker = pacing.Breaker(redis_client, f"webhook:{endpoint_id}", 5, 30.0)
            start = time.monotonic()
            for m in messages:
                service.fan_out_partners(m)
            fx.wait_until(
                lambda: breaker.state() is pacing.BreakerState.OPEN, timeout=30, what="open"
            )
            opened_s = time.monotonic() - start
            time.sleep(2.0)
            attempts = hanging.attempts

    print(f"webhooks: hanging partner's breaker open after {opened_s:.2f} s, {attempts} attempts")
    assert opened_s < 3.0 + 2.0, f"breaker took {opened_s:.2f} s to open"
    # At most the two slots' worth in flight when the second timeout opens it, twice over
    # (a slot freed by the first timeout may start one more request before the second).
    assert attempts <= 2 * 2, f"{attempts} requests reached a hanging partner"
