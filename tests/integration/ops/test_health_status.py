"""Readiness follows real worker heartbeats; `reunite status` shows queues, workers, breakers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from channels import pacing, service
from channels.models import DeadLetter
from ops import celery_hooks
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow


@pytest.mark.cluster_smoke  # on a cluster: queues from the broker, heartbeats from the cluster
def test_readyz_turns_ready_when_a_worker_beats_and_status_reports_it(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    channels_json = fx.apply(monkeypatch, fx.channel_settings())
    case_id = fx.make_case()
    partner = fx.make_partner("MapsApp")
    with session_scope() as s:
        endpoint = service.add_endpoint(s, partner, "http://127.0.0.1:9/hooks", "whsec_dGVzdA==")
        endpoint_id = endpoint.id
    message_id = fx.new_message(case_id)
    with session_scope() as s:
        s.add(
            DeadLetter(
                message_id=message_id,
                case_id=case_id,
                channel="apns",
                targets=[[1, partner], [2, partner]],
                reason="InternalServerError",
                attempts=5,
            )
        )
    breaker = pacing.Breaker(get_redis(), f"webhook:{endpoint_id}", threshold=1, open_s=60)
    breaker.record(False)
    # Work waiting on a queue this worker does not consume: the status shows it.
    from ops.platform.celery_app import celery_app

    celery_app.send_task("reunite.geo.tick", queue="geo")

    from alerts.app import create_app

    client = TestClient(create_app())
    assert client.get("/readyz").status_code == 503
    env = fx.worker_env(database, tmp_path, channels_json)
    with fx.worker(env, tmp_path / "w.log", concurrency=1) as proc:
        fx.wait_until(
            lambda: client.get("/readyz").status_code == 200, timeout=60, what="worker heartbeat"
        )
        assert client.get("/readyz").json()["checks"]["workers"] == "ok (1)"
        out = subprocess.run(
            [sys.executable, "-m", "alerts.cli", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert "workers seen in the last 30s: 1" in text, text
        assert f"pid {proc.pid}" in text, text
        assert any(line.split()[:2] == ["geo", "1"] for line in text.splitlines()), text
        assert f"webhook    open       partner {partner} endpoint {endpoint_id}" in text, text
        assert "dead letters pending replay: 2 targets" in text, text
        metrics = client.get("/metrics").text
        assert f'reunite_breaker_state{{channel="webhook",partner="{partner}"}} 2.0' in metrics
        assert (
            'reunite_dead_letters_pending{channel="apns",reason="InternalServerError"} 2.0'
            in metrics
        )
    fx.wait_until(
        lambda: client.get("/readyz").status_code == 503, timeout=30, what="heartbeat removed"
    )


def test_request_id_is_echoed_when_sane_and_replaced_when_not(database):
    from alerts.app import create_app

    client = TestClient(create_app())
    given = client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    junk = client.get("/livez", headers={"X-Request-ID": "a b\tc" * 40})
    assert junk.headers["x-request-id"] != "a b\tc" * 40
    assert len(junk.headers["x-request-id"]) == 16


def test_task_logs_are_tagged_with_the_case_of_their_arguments():
    from alerts.dispatch.tasks import dispatch_case
    from channels.tasks import apns_batch

    assert celery_hooks.case_of(apns_batch, ("c-1:alert:0:1", [1], 0, 0.0), {}) == "c-1"
    assert celery_hooks.case_of(dispatch_case, (), {"outbox_id": 1, "case_id": "c-2"}) == "c-2"
    assert celery_hooks.case_of(apns_batch, ("a", "b", "c", "d", "e", "f"), {}) is None
