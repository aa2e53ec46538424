"""Alerts for people who arrive later, through the partner API, the broker and the task the
worker runs: a device that uploads a location inside an active case's live area is alerted
once, with the wave's message and in its ledger; never twice, never after closure, never
with the operator's setting off."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.app import create_app
from alerts.cases import service as cases
from alerts.dispatch import flows
from alerts.dispatch import service as dispatch
from alerts.dispatch import tasks as dispatch_tasks
from alerts.users.models import User
from alerts.users.roles import Rank, Role
from channels import ledger
from geo import late
from geo.rulesets import service as rulesets
from geo.rulesets.schemas import RuleSetCreate
from geo.waves import service as waves
from ops.platform.db import session_scope
from ops.platform.outbox.models import OutboxMessage
from ops.platform.redis_client import get_broker_redis, get_redis
from tests.factories import make_agency, make_partner, make_user, partner_headers
from tests.integration.geo.test_waves import approved_case, case_waves, place, run_wave


@pytest.fixture
def world(database, app_redis, monkeypatch):
    monkeypatch.setattr(late, "REFRESH_S", 0.0)  # every upload re-reads the live areas
    late.invalidate()
    make_agency("PSB")
    key = make_partner()
    officer = make_user("officer1", Role.OFFICER, "PSB")
    sup = make_user("sup1", Role.SUPERVISOR, "PSB", Rank.INSPECTOR)
    broker = get_broker_redis()
    for k in geo_queue(broker):
        broker.delete(k)
    with TestClient(create_app()) as api:
        yield {"officer": officer, "sup": sup, "api": api, "key": partner_headers(key)}


def geo_queue(broker) -> list[bytes]:
    """The Celery queue "geo", one list per priority step."""
    return [k for k in broker.keys("geo*") if k == b"geo" or k.startswith(b"geo\x06\x16")]


def run_late_tasks() -> list[int]:
    """Take the queued late-arrival tasks off the broker and run them as the worker does;
    how many devices each alerted."""
    broker = get_broker_redis()
    queued = [json.loads(m) for k in geo_queue(broker) for m in broker.lrange(k, 0, -1)]
    for k in geo_queue(broker):
        broker.delete(k)
    return [
        dispatch_tasks.late_arrivals.apply(args=json.loads(base64.b64decode(m["body"]))[0]).get()
        for m in queued
        if m["headers"]["task"] == late.LATE_ARRIVALS
    ]


def upload(world, rows: dict[str, tuple[float, float]]) -> None:
    """A partner's bulk NDJSON upload; every row registers or moves its device."""
    body = "".join(
        json.dumps({"id": name, "lat": lat, "lon": lon, "platform": "apns", "address": "a" * 64})
        + "\n"
        for name, (lat, lon) in rows.items()
    )
    res = world["api"].post(
        "/api/v1/partner/devices/bulk",
        content=body,
        headers={**world["key"], "Content-Type": "application/x-ndjson"},
    )
    assert res.status_code == 200 and not res.json()["rejected"], res.text


def device_id(name: str) -> int:
    from geo.devices.models import Device

    with session_scope() as s:
        return s.scalar(select(Device.id).where(Device.external_id == name))


def targeted(message_id: str) -> int:
    """Devices the channels were handed for this message (the delivery ledger)."""
    counts = ledger.live_counts(get_redis(), message_id)
    return sum(c.get("targeted", 0) for c in counts.values())


def live_case(world) -> tuple[str, object]:
    """An approved case whose first wave (100 km) started and opened its late area."""
    case_id = approved_case(world)
    w0 = case_waves(case_id)[0]
    run_wave(w0.id)
    flows.open_late_area(w0.id)
    return case_id, case_waves(case_id)[0]


@pytest.mark.cluster_smoke
def test_a_device_entering_the_live_area_is_alerted_exactly_once(world):
    upload(world, {"early": place(40)})  # there before the wave: the wave tells it
    case_id, w0 = live_case(world)
    assert set(waves.alerted(case_id).tolist()) == {device_id("early")}
    told_by_wave = targeted(w0.message_id)
    run_late_tasks()

    upload(world, {"arrived": place(30), "early": place(35), "outside": place(300)})
    assert run_late_tasks() == [1]
    upload(world, {"arrived": place(20)})  # uploads again, still inside
    assert run_late_tasks() == [0]

    assert set(waves.alerted(case_id).tolist()) == {device_id("early"), device_id("arrived")}
    assert targeted(w0.message_id) == told_by_wave + 1, "one more target: the arrival, once"
    assert waves.wave_stats([w0.id])[w0.id] == 1
    assert int(get_redis().hget(waves.stats_key(w0.id), "late")) == 1


def test_the_single_device_route_alerts_an_arrival_too(world):
    case_id, w0 = live_case(world)
    body = {"platform": "apns", "address": "b" * 64, "lat": place(10)[0], "lon": place(10)[1]}
    res = world["api"].put("/api/v1/partner/devices/walker", json=body, headers=world["key"])
    assert res.status_code == 200, res.text
    run_late_tasks()
    assert waves.alerted(case_id).tolist() == [device_id("walker")]
    assert targeted(w0.message_id) == 1


def test_a_drill_alerts_only_test_devices_that_arrive_with_its_marked_message(world, monkeypatch):
    from alerts.feeds.models import CaseDrill
    from channels import service as channels

    case_id = approved_case(world)
    with session_scope() as s:
        s.add(CaseDrill(case_id=case_id, marked_by_id=world["sup"], status="exercise"))
    run_wave(case_waves(case_id)[0].id)
    w0 = case_waves(case_id)[0]
    flows.open_late_area(w0.id)
    lat, lon = place(10)
    for name, test_device in (("public", False), ("handset", True)):
        body = {"platform": "apns", "address": "c" * 64, "lat": lat, "lon": lon}
        res = world["api"].put(
            f"/api/v1/partner/devices/{name}",
            json={**body, "test_device": test_device},
            headers=world["key"],
        )
        assert res.status_code == 200, res.text
    handed: list[tuple[str, list[int], bool]] = []
    real = channels.fan_out_devices

    def spy(message_id, ids, **kw):
        handed.append((message_id, list(ids), kw.get("test_only", False)))
        return real(message_id, ids, **kw)

    monkeypatch.setattr(channels, "fan_out_devices", spy)
    run_late_tasks()
    assert handed and all(m == w0.message_id and test_only for m, _, test_only in handed)
    assert targeted(w0.message_id) == 1, "the test handset only, as the drill's waves do"


def test_no_late_alert_once_the_case_is_closed(world):
    case_id, w0 = live_case(world)
    with session_scope() as s:
        cases.resolve(s, case_id, s.get(User, world["officer"]), "found safe")
    # Before the closing dispatch withdraws the area, the task itself refuses.
    upload(world, {"late1": place(10)})
    assert run_late_tasks() == [0]
    with session_scope() as s:
        outbox_id = s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()))
        dispatch.run_dispatch(s, outbox_id, case_id, "resolved")
    assert get_redis().hget(late.AREAS_KEY, case_id) is None
    upload(world, {"late2": place(12)})
    assert run_late_tasks() == []
    assert len(waves.alerted(case_id)) == 0 and targeted(w0.message_id) == 0


def test_no_late_alert_when_the_operator_turned_it_off(world):
    with session_scope() as s:
        data = RuleSetCreate(
            steps=[{"up_to_minutes": 60, "radius_km": 100}],
            max_radius_km=500,
            alert_late_arrivals=False,
        )
        rulesets.create_version(s, data, actor="user:1", ceiling_km=1000)
    case_id, w0 = live_case(world)
    assert get_redis().hget(late.AREAS_KEY, case_id) is None, "the wave opened no late area"
    upload(world, {"late": place(10)})
    assert run_late_tasks() == []
    assert len(waves.alerted(case_id)) == 0 and targeted(w0.message_id) == 0


def test_turning_it_off_stops_an_area_already_open(world):
    case_id, w0 = live_case(world)
    upload(world, {"first": place(10)})
    with session_scope() as s:
        data = RuleSetCreate(
            steps=[{"up_to_minutes": 60, "radius_km": 100}],
            max_radius_km=500,
            alert_late_arrivals=False,
        )
        rulesets.create_version(s, data, actor="user:1", ceiling_km=1000)
    run_late_tasks()  # queued before the switch: the task re-reads the setting
    upload(world, {"second": place(10)})
    run_late_tasks()
    assert len(waves.alerted(case_id)) == 0 and targeted(w0.message_id) == 0


def test_an_upload_is_stored_and_answered_when_the_broker_is_away(world, monkeypatch):
    import kombu.exceptions

    case_id, _w0 = live_case(world)

    def away(*_a, **_k):
        raise kombu.exceptions.OperationalError("broker down")

    monkeypatch.setattr(late.celery_app, "send_task", away)
    upload(world, {"late": place(10)})  # 200, the row applied
    monkeypatch.undo()
    monkeypatch.setattr(late, "REFRESH_S", 0.0)
    assert len(waves.alerted(case_id)) == 0
    upload(world, {"late": place(11)})  # its next upload inside queues it after all
    assert run_late_tasks() == [1]
