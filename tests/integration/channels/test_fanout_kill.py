"""A worker SIGKILLed mid fan-out: a new worker finishes it, nothing lost, few duplicates."""

from __future__ import annotations

import contextlib
import time
from collections import Counter

import pytest

from channels import ledger, service
from ops.peers import apns as apns_sink
from ops.peers import keys
from ops.peers._runtime import temp_tls
from tests.integration.channels import fanout_env as fx
from tests.peers.config import TOPIC

# Real workers, a real broker, a SIGKILL: on a Redis Cluster too by default (~15 s there).
pytestmark = [pytest.mark.slow, pytest.mark.cluster_smoke]

DEVICES = 2000
BATCH = 100


def test_killed_worker_batch_is_completed_by_a_new_worker_without_loss(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker: REDIS_URL, or CELERY_BROKER_URL beside a cluster
    key = keys.make_apns_key()
    # Every token is "slow": the sink holds each push 20 ms, so the fan-out takes seconds.
    sink = apns_sink.ApnsSink(
        topic=TOPIC,
        team_id=key.team_id,
        key_id=key.key_id,
        public_key=key.public_key,
        slow_seconds=0.02,
    )
    with contextlib.ExitStack() as stack:
        tls = stack.enter_context(temp_tls())
        endpoint = stack.enter_context(apns_sink.running(sink, tls=tls))
        doc = fx.channel_settings(
            apns={
                "base_url": endpoint.url,
                "topic": TOPIC,
                "team_id": key.team_id,
                "key_id": key.key_id,
                "auth_key": key.private_pem,
                "transport": {"ca_bundle": str(endpoint.ca_bundle), "timeout_s": 5.0},
            },
            apns_batch=BATCH,
            apns_concurrency=10,
            # Redeliver a dead worker's unacknowledged batch after 3 s instead of 10 min.
            visibility_timeout_s=3,
            retry_max_delay_s=2.0,
        )
        channels_json = fx.apply(monkeypatch, doc)
        case_id = fx.make_case()
        partner = fx.make_partner("MapsApp")
        tokens = [f"slow-{i:05d}" for i in range(DEVICES)]
        ids = fx.add_devices(partner, "apns", tokens)
        message_id = fx.new_message(case_id)
        env = fx.worker_env(database, tmp_path, channels_json)

        with fx.worker(env, tmp_path / "w1.log", concurrency=1) as first:
            assert service.fan_out_devices(message_id, list(ids.values())) == {"apns": DEVICES}
            fx.wait_until(lambda: len(sink.accepted) >= 500, what="first 500 pushes")
            fx.kill_group(first)
        at_kill = len(sink.accepted)
        time.sleep(0.5)  # pushes already on the wire may still land
        assert len({p.token for p in sink.accepted}) < DEVICES, "fan-out finished before the kill"

        with fx.worker(env, tmp_path / "w2.log", concurrency=1):
            fx.wait_until(
                lambda: len({p.token for p in sink.accepted}) == DEVICES,
                timeout=60,
                what="every device alerted after the restart",
            )
            time.sleep(1.0)  # a late duplicate would show up here

    received = Counter(p.token for p in sink.accepted)
    duplicated = sum(n - 1 for n in received.values())
    lost = DEVICES - len(received)
    counts = ledger.live_counts(app_redis, message_id)[("apns", partner)]
    print(
        f"kill: targeted={DEVICES} delivered={len(received)} duplicated={duplicated} "
        f"lost={lost} accepted_at_kill={at_kill} ledger_sent={counts['sent']}"
    )
    assert lost == 0, f"{lost} devices never got the alert"
    assert duplicated <= BATCH, f"{duplicated} duplicates: more than the killed batch"
    assert counts["sent"] == DEVICES and counts["targeted"] == DEVICES
