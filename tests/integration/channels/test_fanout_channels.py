"""Fan-out through real workers to the real local peers: every channel and each error class."""

from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from channels import service
from channels.models import DeadLetter
from geo.devices.models import Device
from ops.peers import apns as apns_sink
from ops.peers import fcm as fcm_sink
from ops.peers import keys, smsc
from ops.peers import webhook as webhook_sink
from ops.peers._runtime import temp_tls
from ops.platform.db import session_scope
from tests.factories import token
from tests.integration.channels import fanout_env as fx
from tests.peers.config import TOPIC

pytestmark = pytest.mark.slow


@pytest.fixture
def peers():
    apns_key = keys.make_apns_key()
    account = keys.make_service_account(token_uri="http://placeholder/token")
    secret = keys.make_webhook_secret()
    a = apns_sink.ApnsSink(
        topic=TOPIC,
        team_id=apns_key.team_id,
        key_id=apns_key.key_id,
        public_key=apns_key.public_key,
        retry_after="1",
    )
    f = fcm_sink.FcmSink(
        project_id=account.info["project_id"],
        client_email=account.info["client_email"],
        public_key=account.public_key,
        retry_after="1",
    )
    s = smsc.SmscSink(throttle_first=1)
    w = webhook_sink.WebhookReceiver(secret=secret, fail_first=1, retry_after="1")
    with contextlib.ExitStack() as stack:
        tls = stack.enter_context(temp_tls())
        a_ep = stack.enter_context(apns_sink.running(a, tls=tls))
        f_ep = stack.enter_context(fcm_sink.running(f))
        s_ep = stack.enter_context(smsc.running(s))
        w_ep = stack.enter_context(webhook_sink.running(w))
        host, port = s_ep.url.removeprefix("smpp://").split(":")
        blocks = {
            "apns": {
                "base_url": a_ep.url,
                "topic": TOPIC,
                "team_id": apns_key.team_id,
                "key_id": apns_key.key_id,
                "auth_key": apns_key.private_pem,
                "transport": {"ca_bundle": str(a_ep.ca_bundle), "timeout_s": 2.0},
            },
            "fcm": {
                "project_id": account.info["project_id"],
                "client_email": account.info["client_email"],
                "private_key": account.info["private_key"],
                "token_uri": f"{f_ep.url}/token",
                "base_url": f_ep.url,
            },
            "smpp": {"host": host, "port": int(port), "system_id": "reunite", "password": "pw"},
        }
        yield {
            "apns": a,
            "fcm": f,
            "smsc": s,
            "webhook": w,
            "webhook_url": w_ep.url,
            "secret": secret,
            "blocks": blocks,
        }


APNS = ["ok-1", "ok-2", "ok-3", "gone-1", "bad-1", "busy-1", "huge-1", "boom-1"]
FCM = ["ok-a", "ok-b", "gone-a", "bad-a", "busy-a", "denied-a"]
SMS = ["8613800000001", "8613800000002", "9990000001"]


@pytest.mark.cluster_smoke  # every channel through real workers on the cluster too (~7 s)
def test_every_channel_delivers_and_classifies_each_error(
    database, tmp_path, redis_client, app_redis, monkeypatch, peers
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    doc = fx.channel_settings(retry_horizon_s=4.0, **peers["blocks"])
    channels_json = fx.apply(monkeypatch, doc)
    case_id = fx.make_case()
    partner = fx.make_partner("MapsApp")
    ids = {
        **fx.add_devices(partner, "apns", APNS),
        **fx.add_devices(partner, "fcm", FCM),
        **fx.add_devices(partner, "sms", SMS, locale="en"),
    }
    with session_scope() as s:
        service.add_endpoint(
            s,
            partner,
            f"{peers['webhook_url']}/hooks/maps",
            SecretStr(peers["secret"]).get_secret_value(),
            rate_per_s=50,
            max_concurrency=2,
        )
    message_id = fx.new_message(case_id)
    env = fx.worker_env(database, tmp_path, channels_json)
    with fx.worker(env, tmp_path / "w.log"):
        counts = service.fan_out_devices(message_id, list(ids.values()))
        assert counts == {"apns": len(APNS), "fcm": len(FCM), "sms": len(SMS)}
        assert service.fan_out_partners(message_id) == 1
        assert service.fan_out_topics(message_id, ["8431aa7ffffffff", "8431abfffffffff"]) == 2

        a, f, smsc_sink, hook = peers["apns"], peers["fcm"], peers["smsc"], peers["webhook"]
        fx.wait_until(
            lambda: {p.token for p in a.accepted} >= {"ok-1", "ok-2", "ok-3", "busy-1"},
            what="APNs deliveries",
        )
        fx.wait_until(
            lambda: (
                {m.target for m in f.accepted}
                >= {
                    "ok-a",
                    "ok-b",
                    "busy-a",
                    "topic:reunite-cell-8431aa7ffffffff",
                    "topic:reunite-cell-8431abfffffffff",
                }
            ),
            what="FCM deliveries",
        )
        fx.wait_until(
            lambda: (
                {m.destination for m in smsc_sink.messages} >= {"8613800000001", "8613800000002"}
            ),
            what="SMS deliveries",
        )
        fx.wait_until(lambda: len(hook.events) == 1, what="partner webhook")
        # boom-1 keeps answering 500: past the 4 s horizon it is dead-lettered.
        with session_scope() as s:
            fx.wait_until(
                lambda: s.scalars(select(DeadLetter)).all(), timeout=20, what="dead letter"
            )

    # Each accepted exactly once; retries honoured Retry-After before succeeding.
    assert sorted(p.token for p in a.accepted) == ["busy-1", "ok-1", "ok-2", "ok-3"]
    assert a.attempts["busy-1"] == 2 and a.attempts["huge-1"] == 1, "failed is not retried"
    assert a.attempts["boom-1"] >= 2, "500 is retried"
    assert f.attempts["busy-a"] == 2 and f.attempts["denied-a"] == 1
    assert hook.attempts == 2 and hook.duplicates == 0
    assert hook.events[0].event["data"]["message_id"] == message_id

    with session_scope() as s:
        inactive = {
            d.id: d.deactivated_reason
            for d in s.scalars(select(Device).where(Device.active.is_(False)))
        }
        [letter] = s.scalars(select(DeadLetter)).all()
    assert inactive == {
        ids["gone-1"]: "Unregistered",
        ids["bad-1"]: "BadDeviceToken",
        ids["gone-a"]: "UNREGISTERED",
        ids["bad-a"]: "INVALID_ARGUMENT",
        ids["9990000001"]: "ESME_RINVDSTADR",
    }, "dead tokens deactivate exactly their devices"
    assert (letter.channel, letter.targets, letter.reason) == (
        "apns",
        [[ids["boom-1"], partner]],
        "InternalServerError",
    )

    from alerts.app import create_app

    with TestClient(create_app()) as client:
        res = client.get(f"/api/v1/cases/{case_id}/deliveries", headers=token(client, "operator1"))
    assert res.status_code == 200, res.text
    totals = {(c["channel"], c["partner_id"]): c for c in res.json()["totals"]}
    apns = totals[("apns", partner)]
    assert (apns["targeted"], apns["sent"], apns["dead"], apns["failed"]) == (8, 4, 2, 1)
    assert (apns["retrying"], apns["dead_lettered"]) == (0, 1)
    fcm = totals[("fcm", partner)]
    assert (fcm["targeted"], fcm["sent"], fcm["dead"], fcm["failed"]) == (6, 3, 2, 1)
    assert totals[("fcm_topic", None)]["sent"] == 2
    sms = totals[("sms", partner)]
    assert (sms["targeted"], sms["sent"], sms["dead"]) == (3, 2, 1)
    assert totals[("webhook", partner)]["sent"] == 1
    history = res.json()["webhook_attempts"]
    assert [h["outcome"] for h in reversed(history)] == ["retry", "ok"]
    print(
        f"every-channel: targeted={8 + 6 + 3 + 2 + 1} delivered={4 + 3 + 2 + 2 + 1} "
        f"dead=5 failed=2 dead_lettered=1 duplicated=0 lost=0"
    )
