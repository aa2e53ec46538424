"""Partners manage their own webhook endpoints; delivery goes through the channel layer."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from alerts.bootstrap import QUEUES
from alerts.cases.models import Case
from alerts.dispatch import flows
from alerts.feeds import service as feeds
from alerts.partners import webhooks
from channels import fanout, pacing
from channels import service as channels
from channels.models import Message
from geo.waves import service as waves
from ops.peers import webhook as webhook_sink
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis
from tests.factories import token
from tests.integration.partners.support import (
    GUANGZHOU,
    URUMQI,
    add_sighting,
    approved_case,
    bearer,
    close,
    create_partner,
    start_first_wave,
)


@pytest.fixture
def receiver():
    sink = webhook_sink.WebhookReceiver(secret="whsec_" + "A" * 32)
    with webhook_sink.running(sink) as endpoint:
        yield sink, endpoint.url


def subscribe(api, sink, url: str) -> int:
    """A partner registers a webhook endpoint; the receiver learns its secret. Returns its id."""
    key = bearer(create_partner(api, token(api, "admin1"), "MapsApp")["key"]["key"])
    created = api.post(
        "/api/v1/partner/webhooks", json={"url": f"{url}/hooks/maps"}, headers=key
    ).json()
    sink.secret = created["secret"]
    return created["endpoint"]["id"]


def deliver(message_id: str, endpoint_id: int) -> None:
    """What the webhook task does for one endpoint."""
    fanout.run_webhook(
        message_id, endpoint_id, 0, time.time(), get_settings().channels, channels.delivery_for
    )


def test_partner_registers_endpoint_receives_signed_event_and_gets_a_redelivery(
    world, api, receiver
):
    sink, url = receiver
    admin = token(api, "admin1")
    key = bearer(create_partner(api, admin, "MapsApp", area=[GUANGZHOU])["key"]["key"])
    res = api.post(
        "/api/v1/partner/webhooks",
        json={"url": f"{url}/hooks/maps", "events": ["alert.published", "alert.resolved"]},
        headers=key,
    )
    assert res.status_code == 201, res.text
    endpoint, sink.secret = res.json()["endpoint"], res.json()["secret"]
    assert sink.secret.startswith("whsec_")
    assert "secret" not in api.get("/api/v1/partner/webhooks", headers=key).text

    message_id = start_first_wave(approved_case(world))
    deliver(message_id, endpoint["id"])
    assert [e.event["data"]["kind"] for e in sink.events] == ["alert"]
    history = api.get("/api/v1/partner/deliveries", headers=key).json()
    assert [(d["message_id"], d["outcome"]) for d in history] == [(message_id, "ok")]

    res = api.post(
        "/api/v1/partner/deliveries/redeliver",
        json={"message_id": message_id, "endpoint_id": endpoint["id"]},
        headers=key,
    )
    assert res.status_code == 202 and res.json()["via"] == "redelivery"
    assert webhooks.redeliver(message_id, endpoint["id"]) == "ok"  # what the queued task runs
    assert sink.duplicates == 1, "a redelivery carries the same webhook-id"
    history = api.get("/api/v1/partner/deliveries", headers=key).json()
    assert [d["attempt"] for d in history] == [2, 1]


def test_redelivery_is_refused_for_a_message_outside_the_partners_area_or_subscription(
    world, api, receiver
):
    """Before, an Urumqi-only partner got a Guangzhou alert by asking for its redelivery."""
    sink, url = receiver
    admin = token(api, "admin1")
    far = bearer(create_partner(api, admin, "XinjiangMaps", area=[URUMQI])["key"]["key"])
    far_endpoint = api.post(
        "/api/v1/partner/webhooks", json={"url": f"{url}/hooks/far"}, headers=far
    ).json()["endpoint"]["id"]
    near = bearer(create_partner(api, admin, "CantonMaps", area=[GUANGZHOU])["key"]["key"])
    closing_only = api.post(
        "/api/v1/partner/webhooks",
        json={"url": f"{url}/hooks/near", "events": ["alert.resolved"]},
        headers=near,
    ).json()["endpoint"]["id"]
    message_id = start_first_wave(approved_case(world))  # a Guangzhou alert

    for key, endpoint in ((far, far_endpoint), (near, closing_only)):
        res = api.post(
            "/api/v1/partner/deliveries/redeliver",
            json={"message_id": message_id, "endpoint_id": endpoint},
            headers=key,
        )
        assert res.status_code == 404, res.text
    assert sink.events == [] and sink.attempts == 0


@pytest.mark.parametrize(("overlap_hours", "old_secret_verifies"), [(1, True), (0, False)])
def test_old_secret_keeps_verifying_only_during_the_rotation_overlap(
    world, api, receiver, overlap_hours, old_secret_verifies
):
    sink, url = receiver
    key = bearer(create_partner(api, token(api, "admin1"), "MapsApp")["key"]["key"])
    created = api.post(
        "/api/v1/partner/webhooks", json={"url": f"{url}/hooks/maps"}, headers=key
    ).json()
    endpoint_id = created["endpoint"]["id"]
    res = api.post(
        f"/api/v1/partner/webhooks/{endpoint_id}/rotate-secret",
        json={"overlap_hours": overlap_hours},
        headers=key,
    )
    assert res.status_code == 200
    assert res.json()["secret"] != created["secret"]
    sink.secret = created["secret"]  # the receiver has not switched yet
    message_id = start_first_wave(approved_case(world))
    deliver(message_id, endpoint_id)
    assert (len(sink.events) == 1) is old_secret_verifies
    sink.secret = res.json()["secret"]  # switched: the new secret always verifies
    assert webhooks.redeliver(message_id, endpoint_id) == "ok"
    assert len(sink.events) == 1


def test_redelivery_respects_an_open_breaker_and_comes_back_as_a_queued_retry(world, api, receiver):
    sink, url = receiver
    endpoint_id = subscribe(api, sink, url)
    message_id = start_first_wave(approved_case(world))
    deliver(message_id, endpoint_id)
    assert len(sink.events) == 1
    s = get_settings().channels
    breaker = pacing.Breaker(
        get_redis(), f"webhook:{endpoint_id}", s.breaker_failures, s.breaker_open_s
    )
    for _ in range(s.breaker_failures):
        breaker.record(False)
    queue = get_redis()
    before = queue.llen("webhook")

    assert webhooks.redeliver(message_id, endpoint_id) != "ok"

    assert sink.duplicates == 0, "an open breaker holds the redelivery like any other send"
    queued = [
        json.loads(raw) for raw in queue.lrange("webhook", 0, -1)[: queue.llen("webhook") - before]
    ]
    retries = [m for m in queued if m["headers"]["task"] == webhooks.REDELIVER_TASK]
    assert len(retries) == 1 and retries[0]["headers"]["eta"], "the retry waits for the breaker"
    for m in retries:  # leave the suite's broker as it was
        queue.lrem("webhook", 1, json.dumps(m))


def test_only_partners_whose_area_the_alert_reaches_get_the_webhook(world, api, receiver):
    _sink, url = receiver
    admin = token(api, "admin1")
    for name, area in (("Near", GUANGZHOU), ("Far", URUMQI)):
        key = bearer(create_partner(api, admin, name, area=[area])["key"]["key"])
        assert (
            api.post(
                "/api/v1/partner/webhooks", json={"url": f"{url}/hooks/{name}"}, headers=key
            ).status_code
            == 201
        )
    case_id = approved_case(world)
    start_first_wave(case_id)
    with session_scope() as s:
        totals = channels.case_deliveries(s, case_id).totals
    assert [(t.channel, t.targeted) for t in totals] == [("webhook", 1)]


def test_partner_cannot_touch_another_partners_endpoint(world, api, receiver):
    _sink, url = receiver
    admin = token(api, "admin1")
    a = bearer(create_partner(api, admin, "A")["key"]["key"])
    b = bearer(create_partner(api, admin, "B")["key"]["key"])
    endpoint = api.post(
        "/api/v1/partner/webhooks", json={"url": f"{url}/hooks/a"}, headers=a
    ).json()["endpoint"]
    assert (
        api.post(f"/api/v1/partner/webhooks/{endpoint['id']}/rotate-secret", headers=b).status_code
        == 404
    )
    assert api.delete(f"/api/v1/partner/webhooks/{endpoint['id']}", headers=b).status_code == 404


def test_unknown_event_type_is_refused(world, api):
    key = bearer(create_partner(api, token(api, "admin1"), "A")["key"]["key"])
    res = api.post(
        "/api/v1/partner/webhooks",
        json={"url": "https://example.com/h", "events": ["alert.exploded"]},
        headers=key,
    )
    assert res.status_code == 422


def test_webhook_events_and_cap_message_types_tell_the_same_story(world, api, receiver):
    """Published once; a sighting's update and its restarted wave are updates; then resolved."""
    sink, url = receiver
    endpoint_id = subscribe(api, sink, url)
    case_id = approved_case(world)
    messages = [start_first_wave(case_id), add_sighting(world, case_id, 23.3, 113.1)]
    with session_scope() as s:
        restarted = next(w for w in waves.waves_of(s, case_id) if w.epoch == 1 and w.index == 0)
        messages.append(flows.begin_wave(s, restarted.id).message_id)
    for message_id in messages:  # each before the case closes (closure withdraws the rest)
        deliver(message_id, endpoint_id)
        time.sleep(0.3)  # the endpoint's pacing (10/s, burst 2.5) would defer a quick third
    messages.append(close(world, case_id))
    deliver(messages[-1], endpoint_id)

    assert [e.event["type"] for e in sink.events] == [
        "alert.published",
        "alert.updated",
        "alert.updated",
        "alert.resolved",
    ]
    with session_scope() as s:
        docs = feeds.case_documents(s, s.get(Case, case_id), get_settings())
    msg_type = {d.message_id: str(d.document.msg_type) for d in docs if d.variant != "cancel"}
    assert [msg_type[m] for m in messages] == ["Alert", "Update", "Update", "Update"]


@pytest.mark.slow
def test_partners_hear_alert_expired_when_an_alert_runs_out(
    world, api, receiver, database, tmp_path, monkeypatch
):
    """Through a real worker: the expiry's dispatch, its notice and the partner event."""
    from sqlalchemy import select

    from alerts.cases import service as cases
    from ops.platform.outbox import relay
    from tests.integration.channels import fanout_env as fx

    sink, url = receiver
    subscribe(api, sink, url)
    channels_json = fx.apply(monkeypatch, fx.channel_settings())
    case_id = approved_case(world)
    env = fx.worker_env(database, tmp_path, channels_json)
    with fx.worker(env, tmp_path / "w.log", queues=",".join(QUEUES)):
        start_first_wave(case_id)
        fx.wait_until(lambda: len(sink.events) == 1, what="the alert")
        with session_scope() as s:
            s.get(Case, case_id).approved_at -= timedelta(hours=get_settings().alert_lifetime_hours)
            assert cases.expire_due(s) == 1
        relay.relay_now()
        fx.wait_until(lambda: len(sink.events) == 2, timeout=60, what="the expiry event")
    with session_scope() as s:
        [expired] = [m for m in s.scalars(select(Message)) if m.kind == "expired"]
        expired_id = expired.id
    assert [e.event["type"] for e in sink.events] == ["alert.published", "alert.expired"]
    assert sink.events[-1].event["data"]["message_id"] == expired_id
