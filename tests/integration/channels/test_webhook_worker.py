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

import pytest

from channels import service
from ops.peers import keys
from ops.peers import webhook as webhook_sink
from tests.integration.channels import fanout_env as fx
from tests.integration.channels.test_fanout_partners import partners, register

pytestmark = pytest.mark.slow
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
        log = tmp_path / "webhooks.log"
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
            start = time.monotonic()
            for m in messages:
                assert service.fan_out_partners(m) == 4
            fx.wait_until(lambda: len(healthy.events) == 4, timeout=30, what="healthy events")
            healthy_s = time.monotonic() - start
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    print(f"webhooks: healthy partner served in {healthy_s:.2f} s while 3 partners hang")
    # With the 12 hanging requests on prefork processes this would take several timeouts.
    assert healthy_s < TIMEOUT_S, f"a hanging partner delayed a healthy one ({healthy_s:.2f} s)"
