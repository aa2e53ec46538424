"""A case resolved mid fan-out: no alert push leaves after the resolve but one chunk per worker.

Before the closure gate, resolving stopped only future waves: every batch already queued kept
sending the "missing child" alert to the remaining ~90% of devices.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from alerts.cases import service as cases
from alerts.users.models import User
from alerts.users.roles import Rank, Role
from channels import ledger, service
from channels.fanout import GATE_EVERY
from ops.platform.db import session_scope
from tests.factories import make_user
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow

DEVICES = 20_000
WORKER_PROCESSES = 2
CONCURRENCY = 20  # APNs streams in flight per batch


def approve(case_id: str) -> User:
    """Submit and approve the case; returns the supervisor (who may also resolve it)."""
    sup_id = make_user("sup1", Role.SUPERVISOR, "PSB", Rank.INSPECTOR)
    with session_scope() as s:
        officer = s.scalars(select(User).where(User.username == "officer1")).one()
        cases.submit(s, case_id, officer)
        cases.approve(s, case_id, s.get(User, sup_id))
    return officer


def test_resolving_mid_fan_out_stops_the_alert_within_one_chunk_per_worker(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    # Slow tokens: each push is held 5 ms, so 20,000 devices take long enough to resolve at 10%.
    with fx.apns_peer(
        monkeypatch, slow_seconds=0.005, apns_batch=500, apns_concurrency=CONCURRENCY
    ) as (sink, channels_json):
        case_id = fx.make_case()
        officer = approve(case_id)
        partner = fx.make_partner("MapsApp")
        ids = fx.add_devices(partner, "apns", [f"slow-{i:05d}" for i in range(DEVICES)])
        message_id = fx.new_message(case_id)
        env = fx.worker_env(database, tmp_path, channels_json)

        with fx.worker(env, tmp_path / "w.log", concurrency=WORKER_PROCESSES):
            assert service.fan_out_devices(message_id, list(ids.values())) == {"apns": DEVICES}
            fx.wait_until(
                lambda: len(sink.accepted) >= DEVICES // 10, timeout=60, what="10% delivered"
            )
            with session_scope() as s:
                cases.resolve(s, case_id, s.get(User, officer.id), "found safe")
            before = {p.token for p in sink.accepted}

            def settled() -> bool:
                counts = ledger.live_counts(app_redis, message_id)[("apns", partner)]
                return counts["sent"] + counts["withdrawn"] == DEVICES

            fx.wait_until(settled, timeout=60, what="every target sent or withdrawn")
            time.sleep(0.5)  # a push still on the wire would land here

    reached = {p.token for p in sink.accepted}
    after = len(reached - before)  # people first alerted after the resolve returned
    counts = ledger.live_counts(app_redis, message_id)[("apns", partner)]
    print(
        f"closure: {DEVICES} targeted, {len(before)} alerted before the resolve returned, "
        f"{after} after it, {counts['withdrawn']} withdrawn"
    )
    # The bound: a worker process re-reads the gate every GATE_EVERY sends, so after the resolve
    # it starts at most that many more, besides the pushes already on the wire.
    assert after <= WORKER_PROCESSES * (GATE_EVERY + CONCURRENCY)
    assert counts["sent"] == len(reached)
    assert counts["withdrawn"] == DEVICES - len(reached)
    assert counts["retrying"] == 0 and counts["failed"] == 0
