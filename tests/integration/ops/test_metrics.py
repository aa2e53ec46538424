"""/metrics after a real fan-out through a real worker: counters moved, no personal labels."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from alerts.cases.models import Case
from channels import service
from ops.peers import apns as apns_sink
from ops.peers import keys
from ops.peers import webhook as webhook_sink
from ops.peers._runtime import temp_tls
from ops.platform.clock import utcnow
from ops.platform.db import session_scope
from tests.factories import CHILD_NAME
from tests.integration.channels import fanout_env as fx
from tests.peers.config import TOPIC
from tests.workers import free_port

pytestmark = pytest.mark.slow
TOKENS = ["ok-1", "ok-2", "busy-1", "gone-1"]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from exposition text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def sinks():
    key = keys.make_apns_key()
    secret = keys.make_webhook_secret()
    apns = apns_sink.ApnsSink(
        topic=TOPIC, team_id=key.team_id, key_id=key.key_id, public_key=key.public_key
    )
    hook = webhook_sink.WebhookReceiver(secret=secret)
    with contextlib.ExitStack() as stack:
        tls = stack.enter_context(temp_tls())
        a_ep = stack.enter_context(apns_sink.running(apns, tls=tls))
        w_ep = stack.enter_context(webhook_sink.running(hook))
        block = {
            "base_url": a_ep.url,
            "topic": TOPIC,
            "team_id": key.team_id,
            "key_id": key.key_id,
            "auth_key": key.private_pem,
            "transport": {"ca_bundle": str(a_ep.ca_bundle), "timeout_s": 2.0},
        }
        yield apns, hook, block, w_ep.url, secret


def test_scrape_after_fan_out_shows_deliveries_by_outcome_and_no_personal_labels(
    database, tmp_path, redis_client, monkeypatch, sinks
):
    apns, hook, block, hook_url, secret = sinks
    redis_client.flushdb()
    channels_json = fx.apply(monkeypatch, fx.channel_settings(apns=block))
    case_id = fx.make_case()
    with session_scope() as s:
        s.get(Case, case_id).approved_at = utcnow() - timedelta(seconds=3)
    partner = fx.make_partner("MapsApp")
    ids = fx.add_devices(partner, "apns", TOKENS)
    with session_scope() as s:
        service.add_endpoint(
            s, partner, f"{hook_url}/hooks/maps", SecretStr(secret).get_secret_value()
        )
    message_id = fx.new_message(case_id, wave=0)

    from alerts.app import create_app

    client = TestClient(create_app())
    before = samples(client.get("/metrics").text)
    worker_port = free_port()
    env = fx.worker_env(
        database, tmp_path, channels_json, REUNITE_WORKER_METRICS_PORT=str(worker_port)
    )
    with fx.worker(env, tmp_path / "w.log"):
        service.fan_out_devices(message_id, list(ids.values()))
        service.fan_out_partners(message_id)
        fx.wait_until(
            lambda: (
                {p.token for p in apns.accepted} >= {"ok-1", "ok-2", "busy-1"}
                and len(hook.events) == 1
            ),
            what="APNs and webhook deliveries",
        )

        def scraped():
            after = samples(client.get("/metrics").text)
            key = ("reunite_approval_to_last_delivery_seconds_count", ())
            return after if after.get(key) else None

        after = fx.wait_until(scraped, what="the wave drained in the metrics")
        res = client.get("/metrics")
        served = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text
    p = str(partner)
    moved = {
        "ok": after[
            ("reunite_deliveries_total", (("channel", "apns"), ("outcome", "ok"), ("partner", p)))
        ],
        "retry": after[
            (
                "reunite_deliveries_total",
                (("channel", "apns"), ("outcome", "retry"), ("partner", p)),
            )
        ],
        "dead": after[("reunite_dead_tokens_total", (("channel", "apns"), ("partner", p)))],
        "webhook": after[
            (
                "reunite_deliveries_total",
                (("channel", "webhook"), ("outcome", "ok"), ("partner", p)),
            )
        ],
        "retries": after[("reunite_delivery_retries_total", (("channel", "apns"),))],
    }
    assert moved == {"ok": 3, "retry": 1, "dead": 1, "webhook": 1, "retries": 1}, moved
    assert not any(k[0] == "reunite_deliveries_total" for k in before), "counters started at 0"
    assert after[("reunite_approval_to_first_delivery_seconds_count", ())] == 1
    assert after[("reunite_cases", (("state", "draft"),))] == 1
    assert after[("reunite_queue_depth", (("queue", "apns"),))] == 0
    assert after[("reunite_workers_seen", ())] == 1, "the worker's heartbeat is visible"

    labels = {
        v
        for family in text_string_to_metric_families(res.text)
        for s in family.samples
        for v in s.labels.values()
    }
    personal = [
        v
        for v in labels
        if CHILD_NAME.lower() in v.lower() or case_id in v or any(t in v for t in TOKENS)
    ]
    assert personal == [], f"personal data in metric labels: {personal}"
    assert CHILD_NAME not in res.text and "gone-1" not in res.text
    # A worker machine serves the same counters itself, without the scrape-time gauges.
    by_worker = samples(served)
    key = ("reunite_deliveries_total", (("channel", "apns"), ("outcome", "ok"), ("partner", p)))
    assert by_worker[key] == moved["ok"]
    assert not any(k[0] == "reunite_cases" for k in by_worker)
    print(f"metrics: targeted=5 delivered={moved['ok'] + moved['webhook']} dead=1 retried=1 lost=0")
