"""A new case's first pushes and a closing notice jump another case's bulk fan-out.

Before the lanes every batch was first in, first out: a case approved while another was
sending waited for all of the other's queued batches.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from alerts.cases import service as cases
from alerts.cases.schemas import CaseCreate
from alerts.users.models import User
from channels import ledger, service
from channels.messages import MessageKind
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import case_payload
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow

BULK = 12_000
SLOW_S = 0.01
CONCURRENCY = 10
WORKER_PROCESSES = 2
BATCH = 500


def another_case() -> str:
    """A second case by the officer fx.make_case created."""
    with session_scope() as s:
        officer = s.scalars(select(User).where(User.username == "officer1")).one()
        payload = CaseCreate.model_validate(case_payload())
        return cases.create(s, payload, officer, get_settings()).id


def test_second_case_and_closing_notice_jump_the_bulk_of_a_running_fan_out(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    with fx.apns_peer(
        monkeypatch, slow_seconds=SLOW_S, apns_batch=BATCH, apns_concurrency=CONCURRENCY
    ) as (sink, channels_json):
        first_case = fx.make_case()
        second_case = another_case()
        partner = fx.make_partner("MapsApp")
        bulk = fx.add_devices(partner, "apns", [f"slow-a{i:05d}" for i in range(BULK)])
        every = fx.add_devices(partner, "apns", [f"slow-b{i:02d}" for i in range(20)])
        urgent = {token: i for token, i in every.items() if token.startswith("slow-b")}
        bulk_message = fx.new_message(first_case, wave=0)
        env = fx.worker_env(database, tmp_path, channels_json)
        # The whole fan-out takes BULK * SLOW_S / (CONCURRENCY * WORKER_PROCESSES) = 6 s.
        with fx.worker(env, tmp_path / "w.log", concurrency=WORKER_PROCESSES):
            service.fan_out_devices(bulk_message, list(bulk.values()))
            fx.wait_until(lambda: len(sink.accepted) >= BATCH, timeout=60, what="bulk started")

            new_case_message = fx.new_message(second_case, wave=0)
            started = time.monotonic()
            service.fan_out_devices(new_case_message, list(urgent.values()))
            fx.wait_until(
                lambda: any(p.token.startswith("slow-b") for p in sink.accepted),
                timeout=60,
                what="the new case's first push",
            )
            first_push_s = time.monotonic() - started
            bulk_done = sum(p.token.startswith("slow-a") for p in sink.accepted)

            notice = fx.new_message(first_case, MessageKind.RESOLVED, wave=0)
            started = time.monotonic()
            service.fan_out_devices(notice, list(bulk.values())[:10])
            fx.wait_until(
                lambda: (
                    ledger.live_counts(app_redis, notice).get(("apns", partner), {}).get("sent", 0)
                    == 10
                ),
                timeout=60,
                what="the closing notice",
            )
            notice_s = time.monotonic() - started
            bulk_at_notice = ledger.live_counts(app_redis, bulk_message)[("apns", partner)]

    print(
        f"lanes: new case's first push after {first_push_s:.2f} s ({bulk_done} of {BULK} bulk "
        f"sent), closing notice after {notice_s:.2f} s ({bulk_at_notice['sent']} bulk sent)"
    )
    # One batch per worker process may be running when the urgent work arrives.
    one_batch_s = BATCH * SLOW_S / CONCURRENCY
    assert first_push_s < 2 * one_batch_s + 1.0
    assert notice_s < 2 * one_batch_s + 1.0
    assert bulk_at_notice["sent"] < BULK, "the bulk fan-out was over before the notice"
