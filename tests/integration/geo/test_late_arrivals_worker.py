"""Late arrivals end to end with a real worker: the wave and the late-arrivals task run in a
`reunite worker` process and push to the loopback APNs peer, which counts what each token got."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from alerts.app import create_app
from geo import late
from ops.platform.outbox import relay
from ops.platform.redis_client import get_broker_redis
from tests.factories import make_agency, make_partner, make_user, partner_headers
from tests.integration.channels import fanout_env as fx
from tests.integration.geo.test_waves import approved_case, case_waves, place

pytestmark = pytest.mark.slow


def test_a_worker_pushes_the_alert_once_to_a_device_that_arrives(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    from alerts.users.roles import Rank, Role

    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    monkeypatch.setattr(late, "REFRESH_S", 0.0)
    late.invalidate()
    with fx.apns_peer(monkeypatch, slow_seconds=0) as (sink, channels_json):
        make_agency("PSB")
        key = partner_headers(make_partner())
        world = {
            "officer": make_user("officer1", Role.OFFICER, "PSB"),
            "sup": make_user("sup1", Role.SUPERVISOR, "PSB", Rank.INSPECTOR),
        }
        env = fx.worker_env(database, tmp_path, channels_json)
        with TestClient(create_app()) as api:

            def put(name: str, at: tuple[float, float]) -> None:
                body = {"platform": "apns", "address": name * 8, "lat": at[0], "lon": at[1]}
                res = api.put(f"/api/v1/partner/devices/{name}", json=body, headers=key)
                assert res.status_code == 200, res.text

            def bulk(name: str, at: tuple[float, float]) -> None:
                row = json.dumps({"id": name, "lat": at[0], "lon": at[1]}) + "\n"
                res = api.post(
                    "/api/v1/partner/devices/bulk",
                    content=row,
                    headers={**key, "Content-Type": "application/x-ndjson"},
                )
                assert res.status_code == 200 and res.json()["applied"] == 1, res.text

            put("early000", place(40))
            put("arrived0", place(700))  # registered far away
            case_id = approved_case(world)
            with fx.worker(env, tmp_path / "w.log", queues=f"geo,{fx.QUEUES}"):
                relay.relay_now()  # the START_WAVE row: the worker starts wave 0
                fx.wait_until(
                    lambda: case_waves(case_id)[0].status == "started", what="wave 0 started"
                )
                fx.wait_until(lambda: len(sink.accepted) >= 1, what="the wave's push")
                bulk("arrived0", place(30))  # enters the area
                fx.wait_until(lambda: len(sink.accepted) >= 2, what="the late push")
                bulk("arrived0", place(20))  # uploads again inside
                put("early000", place(10))  # told by the wave already
                broker = get_broker_redis()
                fx.wait_until(
                    lambda: not any(broker.llen(k) for k in (b"geo", b"apns")),
                    what="queues drained",
                )
                time.sleep(1.0)  # a push still on the wire would land here
    tokens = [p.token for p in sink.accepted]
    assert sorted(tokens) == sorted(["early000" * 8, "arrived0" * 8]), tokens
