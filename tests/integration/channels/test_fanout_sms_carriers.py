"""SMS through real workers to an SMSC that behaves like a carrier: capped per second,
throttling per PDU, receipts, transmitter-only binds.

Found with an npm `smpp` SMSC and Jasmin capped at 2 msg/s: pacing counted messages while the
carrier counted parts (18-19 submit_sm/s at a 5 msg/s setting); a throttled part resent the
whole message (after 8 minutes one of 10 numbers had the alert; handsets got part 1 six to
ten times and never part 2); a throttle opened the SMS breaker; a transmitter-only SMSC could
not be used; nobody learned what was delivered.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from channels import ledger, pacing, service, sms
from channels.messages import MessageKind
from ops.peers import smsc
from tests.factories import token
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow

NUMBERS = [f"86138000{i:05d}" for i in range(1, 11)]


@contextlib.contextmanager
def carrier(**scripting) -> Iterator[tuple[smsc.SmscSink, dict]]:
    """The loopback SMSC and the smpp block pointing at it."""
    sink = smsc.SmscSink(**scripting)
    with smsc.running(sink) as endpoint:
        host, port = endpoint.url.removeprefix("smpp://").split(":")
        yield sink, {"host": host, "port": int(port), "system_id": "reunite", "password": "pw"}


def sms_text(message_id: str, language: str = "zh-CN") -> sms.SmsPlan:
    delivery = service.delivery_for(message_id)
    assert delivery is not None
    return sms.plan(delivery.message_for(language).sms_text)


def sms_totals(app_redis, message_id: str) -> dict[str, int]:
    counts = ledger.live_counts(app_redis, message_id)
    rows = [row for (channel, _), row in counts.items() if channel == "sms"]
    return {k: sum(r[k] for r in rows) for k in ("targeted", "sent", "delivered", "retrying")}


def test_a_throttling_carrier_gets_every_part_exactly_once_and_the_breaker_stays_closed(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    with carrier(max_per_second=2) as (sink, smpp):  # Jasmin's cap in the field
        doc = fx.channel_settings(
            smpp={**smpp, "throttle_retry_s": 0.5},
            sms_rate_per_s=5.0,  # faster than the carrier allows, as in the field
            breaker_failures=1,  # one counted failure would open it
            retry_horizon_s=300.0,
        )
        channels_json = fx.apply(monkeypatch, doc)
        case_id = fx.make_case()
        partner = fx.make_partner("Carrier")
        ids = fx.add_devices(partner, "sms", NUMBERS)
        message_id = fx.new_message(case_id)
        plan = sms_text(message_id)
        assert plan.part_count == 2, "a Chinese alert is two parts"
        env = fx.worker_env(database, tmp_path, channels_json)
        started = time.monotonic()
        with fx.worker(env, tmp_path / "w.log", concurrency=2, queues="sms"):
            service.fan_out_devices(message_id, list(ids.values()))
            fx.wait_until(
                lambda: all(len(sink.parts_to(n)) >= 2 for n in NUMBERS),
                timeout=120,
                what="both parts on every handset",
            )
            fx.wait_until(
                lambda: sms_totals(app_redis, message_id)["delivered"] == len(NUMBERS),
                timeout=30,
                what="every number delivered (receipts)",
            )
            breaker = pacing.Breaker(app_redis, "sms", 1, 30.0).state()
            from alerts.app import create_app

            with TestClient(create_app()) as api:
                res = api.get(
                    f"/api/v1/cases/{case_id}/deliveries", headers=token(api, "operator1")
                )
                scraped = api.get("/metrics").text
        took = time.monotonic() - started

    throttled = sum(1 for _, status in sink.answers if status == 0x58)
    print(
        f"throttling carrier: {len(NUMBERS)} numbers x 2 parts at a 2/s cap in {took:.1f}s, "
        f"{throttled} throttles, duplicates={len(sink.duplicate_parts())}"
    )
    assert throttled > 0, "the carrier did throttle"
    assert sink.duplicate_parts() == {}, "no part accepted (billed, shown) twice"
    for number in NUMBERS:
        parts = sink.parts_to(number)
        assert sorted((p.total, p.seq) for p in parts) == [(2, 1), (2, 2)], number
        assert len({p.ref for p in parts}) == 1, f"{number}: one UDH reference"
        assert [m.text for m in sink.messages_to(number)] == [plan.text], number
    assert sink.max_accepted_in_window(1.0) <= 2
    assert breaker is pacing.BreakerState.CLOSED, "throttling is not an endpoint failure"
    [totals] = [c for c in res.json()["totals"] if c["channel"] == "sms"]
    assert (totals["targeted"], totals["sent"], totals["delivered"]) == (10, 10, 10)
    delivered = [
        s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
        if s.name == "reunite_delivered_total" and s.labels.get("channel") == "sms"
    ]
    assert sum(delivered) == len(NUMBERS), "/metrics counts delivered as the ledger does"


def test_a_transmitter_only_smsc_takes_the_alert_and_receipts_come_on_a_receiver_bind(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    numbers = NUMBERS[:3]
    with carrier(transmitter_only=True) as (sink, smpp):
        doc = fx.channel_settings(smpp={**smpp, "bind_type": "transmitter"})
        channels_json = fx.apply(monkeypatch, doc)
        case_id = fx.make_case()
        ids = fx.add_devices(fx.make_partner("Carrier"), "sms", numbers)
        message_id = fx.new_message(case_id)
        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w.log", concurrency=1, queues="sms"):
            service.fan_out_devices(message_id, list(ids.values()))
            fx.wait_until(
                lambda: sms_totals(app_redis, message_id)["delivered"] == len(numbers),
                timeout=60,
                what="every number delivered",
            )

    assert sink.refused_transceivers == 0
    assert all(len(sink.messages_to(n)) == 1 for n in numbers)
    submitters = {s.session_id for s in sink.submits}
    receivers = {r.session_id for r in sink.receipts}
    assert receivers and not receivers & submitters, "receipts came on the receiver bind"


def test_pacing_counts_parts_so_two_part_messages_take_twice_as_long(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    """N two-part messages at P parts/s take about 2N/P seconds, against N one-part messages
    at the same setting as the baseline (loosely: the worker's own timing varies)."""
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    rate, n = 8.0, 8
    numbers = NUMBERS[:n]
    with carrier() as (sink, smpp):
        doc = fx.channel_settings(smpp=smpp, sms_rate_per_s=rate)
        channels_json = fx.apply(monkeypatch, doc)
        case_id = fx.make_case()
        ids = fx.add_devices(fx.make_partner("Carrier"), "sms", numbers)
        one_part = fx.new_message(case_id, MessageKind.RESOLVED, wave=0)
        two_part = fx.new_message(case_id)
        assert sms_text(one_part).part_count == 1 and sms_text(two_part).part_count == 2
        env = fx.worker_env(database, tmp_path, channels_json)
        spans = {}
        with fx.worker(env, tmp_path / "w.log", concurrency=2, queues="sms"):
            for message_id, parts in ((one_part, 1), (two_part, 2)):
                before = len(sink.accepted)
                service.fan_out_devices(message_id, list(ids.values()))
                fx.wait_until(
                    lambda b=before, p=parts: len(sink.accepted) - b == n * p,
                    timeout=60,
                    what=f"{n * parts} parts",
                )
                times = sorted(p.at for p in sink.accepted[before:])
                spans[parts] = times[-1] - times[0]

    print(f"pacing {rate:g} parts/s: {n} one-part {spans[1]:.2f}s, two-part {spans[2]:.2f}s")
    assert spans[2] >= 0.8 * (2 * n - 1) / rate, "about 2N/P seconds"
    assert spans[2] >= 1.5 * spans[1], "a two-part message costs two tokens, not one"
    assert spans[2] <= 3 * (2 * n) / rate, "and no slower than the rate allows, loosely"
    assert sink.max_accepted_in_window(1.0) <= rate + 1
