"""The ledger, not the broker, decides what is left to send: the reconciler finishes it.

Before, a batch the broker lost (a Redis crash, a failed retry publish) left its devices at
"targeted" forever with no dead letter, and a killed worker's batch waited for the broker's
visibility timeout (10 minutes by default) before anyone sent it.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from alerts import status as status_report
from channels import ledger, reconcile, service
from channels import status as channel_status
from channels import tasks as channel_tasks
from channels.fanout import FLUSH_EVERY
from ops.platform.db import session_scope
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow

GRACE_S = 1.0


def apns_world(monkeypatch, **settings):
    return fx.apns_peer(monkeypatch, slow_seconds=0.01, owner_grace_s=GRACE_S, **settings)


def queue_lists(client, queue: str) -> list[bytes]:
    """The Redis lists holding one Celery queue (one per priority step)."""
    return [k for k in client.keys(f"{queue}*") if k == queue.encode() or b"\x06\x16" in k]


def test_batches_the_broker_lost_are_queued_again_by_the_reconciler(
    database, tmp_path, redis_client, monkeypatch, capsys
):
    redis_client.flushdb()
    with apns_world(monkeypatch, apns_batch=100) as (sink, channels_json):
        case_id = fx.make_case()
        partner = fx.make_partner("MapsApp")
        ids = fx.add_devices(partner, "apns", [f"slow-{i:04d}" for i in range(500)])
        message_id = fx.new_message(case_id)
        assert service.fan_out_devices(message_id, list(ids.values())) == {"apns": 500}
        # The broker loses every queued batch (a crash without persistence, say).
        assert redis_client.delete(*queue_lists(redis_client, "apns")) >= 1
        assert reconcile.overdue(redis_client) == 0, "not stuck before its deadline"
        assert _panel(case_id) == ([], 0)
        time.sleep(GRACE_S + 0.2)
        assert reconcile.overdue(redis_client) == 1, "stuck, and visible as stuck"
        # The operator sees which message is stuck, on which channel, with how many open.
        assert _panel(case_id) == (["apns"], 0)
        assert _stuck_gauge(redis_client) == {"apns": 500}
        status_report.print_status()
        assert f"{message_id}" in capsys.readouterr().out

        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w.log"):
            assert channel_tasks.reconcile_deliveries.apply().result == 500
            fx.wait_until(lambda: len(sink.accepted) >= 500, timeout=60, what="all 500 pushes")
            fx.wait_until(
                lambda: redis_client.zcard(reconcile.OPEN) == 0,
                what="the finished message leaving the open set",
            )

    received = Counter(p.token for p in sink.accepted)
    assert len(received) == 500 and max(received.values()) == 1
    counts = ledger.live_counts(redis_client, message_id)[("apns", partner)]
    assert counts["sent"] == counts["targeted"] == 500
    assert reconcile.overdue(redis_client) == 0
    assert _panel(case_id) == ([], 500), "no longer stuck; the re-queue stays on record"
    assert _stuck_gauge(redis_client) == {}


def _panel(case_id: str) -> tuple[list[str], int]:
    """What the delivery panel (console and API) says of the case's one message."""
    with session_scope() as session:
        [message] = service.case_deliveries(session, case_id).messages
    return message.stuck_channels, message.requeued


def _stuck_gauge(client) -> dict[str, float]:
    with session_scope() as session:
        families = {f.name: f for f in channel_status.gauges(session, client)}
    return {
        s.labels["channel"]: s.value for s in families["reunite_delivery_stuck_targets"].samples
    }


def test_killed_worker_is_recovered_by_the_reconciler_not_the_visibility_timeout(
    database, tmp_path, redis_client, monkeypatch
):
    redis_client.flushdb()
    devices, batch, concurrency = 2000, 100, 10
    # The broker would hand the killed batch back only after 10 minutes.
    with apns_world(
        monkeypatch, apns_batch=batch, apns_concurrency=concurrency, visibility_timeout_s=600
    ) as (sink, channels_json):
        case_id = fx.make_case()
        partner = fx.make_partner("MapsApp")
        ids = fx.add_devices(partner, "apns", [f"slow-{i:05d}" for i in range(devices)])
        message_id = fx.new_message(case_id)
        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w1.log", concurrency=1) as first:
            service.fan_out_devices(message_id, list(ids.values()))
            fx.wait_until(lambda: len(sink.accepted) >= devices * 3 // 10, what="30% sent")
            fx.kill_group(first)
        killed_at = time.monotonic()
        with fx.worker(env, tmp_path / "w2.log", concurrency=1):

            def delivered() -> bool:
                channel_tasks.reconcile_deliveries.apply()  # what beat runs every period
                return len({p.token for p in sink.accepted}) == devices

            fx.wait_until(delivered, timeout=60, interval=0.5, what="every device alerted")
            recovered_s = time.monotonic() - killed_at
            time.sleep(1.0)  # a late duplicate would land here

    received = Counter(p.token for p in sink.accepted)
    duplicated = sum(n - 1 for n in received.values())
    print(f"reconciler: recovered in {recovered_s:.1f} s, {duplicated} duplicates")
    assert len(received) == devices
    # Recovery is bounded by the reconciler's grace and period, not the visibility timeout.
    assert recovered_s < 30
    # What the killed process had sent but not yet recorded: under one flush plus its streams.
    assert duplicated <= FLUSH_EVERY + concurrency
