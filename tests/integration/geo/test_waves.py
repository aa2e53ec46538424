"""The wave engine on a real database and Redis: schedule, delta targeting, sightings, stop."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pyproj import Geod
from sqlalchemy import select

from alerts.cases import service as cases
from alerts.cases.schemas import CaseCreate
from alerts.dispatch import flows
from alerts.dispatch import service as dispatch
from alerts.dispatch import tasks as dispatch_tasks
from alerts.users.models import User
from alerts.users.roles import Rank, Role
from geo import cells, targeting
from geo.devices import service as devices
from geo.devices.service import Platform
from geo.waves import service as waves
from geo.waves.models import Wave
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.outbox.models import OutboxMessage
from ops.platform.redis_client import get_broker_redis, get_redis
from tests.factories import case_payload, make_agency, make_partner, make_user

GEOD = Geod(ellps="WGS84")
CENTER = (23.1291, 113.2644)


def place(distance_km: float, azimuth: float = 45.0, origin=CENTER) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(origin[1], origin[0], azimuth, distance_km * 1000)
    return lat, lon


@pytest.fixture
def world(database, app_redis):
    make_agency("PSB")
    make_partner()
    officer = make_user("officer1", Role.OFFICER, "PSB")
    sup = make_user("sup1", Role.SUPERVISOR, "PSB", Rank.INSPECTOR)
    return {"officer": officer, "sup": sup}


def add_devices(points: dict[str, tuple[float, float]]) -> dict[str, int]:
    ids = {}
    with session_scope() as s:
        for name, _ in points.items():
            ids[name] = devices.upsert(
                s,
                1,
                name,
                platform=Platform.APNS,
                address=f"token-{name}-xxxxxxxx",
                locale="en",
                opted_in=True,
            ).id
    index = devices.location_index()
    lats = np.array([p[0] for p in points.values()])
    lons = np.array([p[1] for p in points.values()])
    index.ingest(np.array(list(ids.values())), cells.snap_many(lats, lons), datetime.now(UTC))
    return ids


def approved_case(world, minutes_ago: int = 30) -> str:
    payload = case_payload()
    payload["last_seen"]["at"] = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    payload["last_seen"]["lat"], payload["last_seen"]["lon"] = CENTER
    with session_scope() as s:
        officer, sup = s.get(User, world["officer"]), s.get(User, world["sup"])
        case = cases.create(s, CaseCreate.model_validate(payload), officer, get_settings())
        cases.submit(s, case.id, officer)
        cases.approve(s, case.id, sup)
        outbox_id = s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()))
        dispatch.run_dispatch(s, outbox_id, case.id, "approved")
        return case.id


def run_wave(wave_id: int) -> set[int]:
    """Start a wave and target every shard, as the start_wave/target_shard tasks do."""
    with session_scope() as s:
        start = flows.begin_wave(s, wave_id)
    if start is None:
        return set()
    found: set[int] = set()
    for shard in start.shards:
        with session_scope() as s:
            found |= set(flows.target_shard(s, wave_id, shard.cell, shard.interior).tolist())
    with session_scope() as s:
        waves.finish_wave(s, wave_id)
    return found


def case_waves(case_id: str) -> list[Wave]:
    with session_scope() as s:
        return waves.waves_of(s, case_id)


def test_approval_plans_the_default_schedule_and_queues_wave_zero(world):
    case_id = approved_case(world, minutes_ago=30)
    rows = case_waves(case_id)
    assert [w.radius_km for w in rows] == [100, 200, 300, 500]
    assert [w.status for w in rows] == ["queued", "scheduled", "scheduled", "scheduled"]
    gaps = [(rows[i + 1].starts_at - rows[i].starts_at) for i in range(1, 3)]
    assert gaps == [timedelta(hours=1), timedelta(hours=1)]
    with session_scope() as s:
        tasks = [r.task for r in s.scalars(select(OutboxMessage))]
    assert tasks.count(flows.START_WAVE) == 1


@pytest.mark.parametrize("snapshot_min", [waves.SNAPSHOT_MIN, 0])
@pytest.mark.cluster_smoke
def test_each_wave_targets_only_devices_not_reached_before(world, monkeypatch, snapshot_min):
    # 0: every shard filters through the bitmap snapshot first, as large shards do.
    monkeypatch.setattr(waves, "SNAPSHOT_MIN", snapshot_min)
    ids = add_devices({"near": place(50), "mid": place(150), "far": place(250), "out": place(600)})
    case_id = approved_case(world)
    w0, w1, w2, w3 = case_waves(case_id)
    assert run_wave(w0.id) == {ids["near"]}
    assert run_wave(w1.id) == {ids["mid"]}
    assert run_wave(w2.id) == {ids["far"]}
    assert run_wave(w3.id) == set()
    assert set(waves.alerted(case_id).tolist()) == {ids["near"], ids["mid"], ids["far"]}
    assert waves.wave_stats([w0.id, w1.id])[w0.id] == 1


@pytest.mark.cluster_smoke
def test_redelivered_shard_task_gets_the_same_devices_back(world):
    ids = add_devices({"a": place(10), "b": place(20, azimuth=200)})
    case_id = approved_case(world)
    w0 = case_waves(case_id)[0]
    with session_scope() as s:
        start = flows.begin_wave(s, w0.id)
    assert start is not None
    first, again = set(), set()
    for shard in start.shards:
        with session_scope() as s:
            first |= set(flows.target_shard(s, w0.id, shard.cell, shard.interior).tolist())
        with session_scope() as s:
            again |= set(flows.target_shard(s, w0.id, shard.cell, shard.interior).tolist())
    assert first == again == {ids["a"], ids["b"]}


def test_due_waves_are_queued_by_the_tick_and_future_ones_wait(world):
    case_id = approved_case(world, minutes_ago=30)
    later = datetime.now(UTC) + timedelta(minutes=45)
    with session_scope() as s:
        assert flows.queue_due(s, later) == 1  # wave 1 (200 km) is due 1 h after the loss
    assert [w.status for w in case_waves(case_id)][:3] == ["queued", "queued", "scheduled"]


def test_sighting_restarts_the_schedule_from_the_new_place_excluding_alerted(world):
    new_center = place(400, azimuth=270)
    ids = add_devices(
        {"home": place(5), "by_sighting": place(5, origin=new_center), "far": place(900)}
    )
    case_id = approved_case(world)
    w0 = case_waves(case_id)[0]
    assert run_wave(w0.id) == {ids["home"]}
    with session_scope() as s:
        flows.add_sighting(
            s,
            case_id,
            at=datetime.now(UTC) - timedelta(minutes=5),
            lat=new_center[0],
            lon=new_center[1],
            address="train station",
            note=None,
            user_id=world["officer"],
        )
    rows = case_waves(case_id)
    old = [w for w in rows if w.epoch == 0]
    new = [w for w in rows if w.epoch == 1]
    assert all(w.status in ("started", "cancelled") for w in old)
    assert new[0].status == "queued" and new[0].center_lat == pytest.approx(new_center[0])
    # The 100 km wave from the sighting reaches the nearby device but not the one already alerted
    # (which lies 400 km away anyway) nor the far one.
    assert run_wave(new[0].id) == {ids["by_sighting"]}


def test_resolving_a_case_stops_its_waves_at_once(world):
    add_devices({"near": place(50), "mid": place(150)})
    case_id = approved_case(world)
    w0, w1, *_ = case_waves(case_id)
    with session_scope() as s:
        cases.resolve(s, case_id, s.get(User, world["officer"]), "found safe")
    # Even before the closing dispatch runs, nothing more is targeted.
    assert run_wave(w1.id) == set()
    with session_scope() as s:
        outbox_id = s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()))
        dispatch.run_dispatch(s, outbox_id, case_id, "resolved")
        assert flows.queue_due(s, datetime.now(UTC) + timedelta(days=1)) == 0
    assert {w.status for w in case_waves(case_id)} == {"cancelled"}


def test_supervisor_cap_replans_remaining_waves(world):
    case_id = approved_case(world)
    with session_scope() as s:
        flows.set_override(
            s,
            case_id,
            start_radius_km=None,
            cap_km=250,
            vertices=None,
            reason="border region",
            user_id=world["sup"],
        )
    live = [w for w in case_waves(case_id) if w.status != "cancelled"]
    assert [w.radius_km for w in live] == [100, 200, 250]


@pytest.mark.cluster_smoke
def test_wave_above_the_fcm_threshold_goes_by_geo_cell_topic(world, monkeypatch):
    from tests.conftest import clear_caches

    add_devices({f"d{i}": place(10 + i, 30 * i) for i in range(5)})
    monkeypatch.setenv("REUNITE_CHANNELS__FCM_TOPIC_THRESHOLD", "3")
    clear_caches()
    case_id = approved_case(world)
    w0 = case_waves(case_id)[0]
    with session_scope() as s:
        start = flows.begin_wave(s, w0.id)
    assert start is not None and start.fcm_topics
    assert waves.uses_fcm_topics(w0.id)
    assert waves.estimate_devices(start.shards) >= 5


def test_wave_below_the_fcm_threshold_sends_per_token(world):
    add_devices({"a": place(10)})
    case_id = approved_case(world)
    w0 = case_waves(case_id)[0]
    with session_scope() as s:
        start = flows.begin_wave(s, w0.id)
    assert start is not None and not start.fcm_topics
    # Only the one shard holding a device gets a targeting task, and no topic is sent.
    assert len(start.shards) == 1 and start.topic_cells == []


def test_edited_active_case_sends_an_update_to_alerted_devices(world):
    case_id = approved_case(world)
    with session_scope() as s:
        row = dispatch.enqueue_dispatch(s, case_id, "updated")
        dispatch.run_dispatch(s, row.id, case_id, "updated")
        notices = [
            r.args for r in s.scalars(select(OutboxMessage)) if r.task == flows.NOTIFY_ALERTED
        ]
    assert [(args[0], args[1].split(":")[1]) for args in notices] == [(case_id, "update")]


@pytest.mark.cluster_smoke
def test_a_shard_task_the_broker_lost_is_sent_again_and_its_devices_alerted(world, monkeypatch):
    monkeypatch.setenv("REUNITE_CHANNELS__OWNER_GRACE_S", "1")
    get_settings.cache_clear()
    ids = add_devices({"a": place(10), "b": place(20, azimuth=200)})
    case_id = approved_case(world)
    w0 = case_waves(case_id)[0]
    with session_scope() as s:
        outbox_id = s.scalar(select(OutboxMessage.id).where(OutboxMessage.task == flows.START_WAVE))
    assert flows.start_wave(outbox_id, w0.id) >= 1
    broker = get_broker_redis()  # REDIS_URL's Redis, unless that is a cluster

    def geo_queue() -> list[bytes]:  # the Celery queue "geo", one list per priority step
        return [k for k in broker.keys("geo*") if k == b"geo" or k.startswith(b"geo\x06\x16")]

    # The broker loses every queued shard task.
    broker.delete(*geo_queue())
    assert flows.reconcile_shards() == 0, "nothing is overdue before its deadline"
    time.sleep(1.2)

    resent = flows.reconcile_shards()

    queued = [json.loads(m) for k in geo_queue() for m in broker.lrange(k, 0, -1)]
    shard_args = [
        json.loads(base64.b64decode(m["body"]))[0]
        for m in queued
        if m["headers"]["task"] == flows.TARGET_SHARD
    ]
    assert resent == len(shard_args) >= 1
    for args in shard_args:  # what the worker runs for each re-sent task
        dispatch_tasks.target_shard.apply(args=args)
    assert set(waves.alerted(case_id).tolist()) == {ids["a"], ids["b"]}
    assert get_redis().zcard(flows.SHARDS_OPEN) == 0, "finished shards leave the open set"


def test_a_device_in_a_cell_topic_is_not_told_again_by_the_next_wave(world, monkeypatch):
    from tests.conftest import clear_caches

    monkeypatch.setenv("REUNITE_CHANNELS__FCM_TOPIC_THRESHOLD", "1")
    clear_caches()
    ids = add_devices({"inner": place(10), "beside": place(10.5)})
    inner_shard = int(cells.parent(cells.snap_many(*map(np.array, zip(place(10)))))[0])
    case_id = approved_case(world)
    w0, w1, *_ = case_waves(case_id)
    with session_scope() as s:
        first = flows.begin_wave(s, w0.id)
    assert first.fcm_topics and inner_shard in first.topic_cells
    assert waves.topic_covers(w0.id, inner_shard)
    with session_scope() as s:
        waves.finish_wave(s, w0.id)
        second = flows.begin_wave(s, w1.id)
    assert second.fcm_topics and second.topic_cells, "the wider ring still goes by topic"
    assert inner_shard not in second.topic_cells, "the inner cell's topic was told already"
    assert not set(second.topic_cells) & {s.cell for s in targeting.plan(waves.area_of(w0))}
    found = set()
    for shard in first.shards:
        with session_scope() as s:
            found |= set(flows.target_shard(s, w0.id, shard.cell, shard.interior).tolist())
    assert found == {ids["inner"], ids["beside"]}
    for shard in second.shards:
        with session_scope() as s:
            assert flows.target_shard(s, w1.id, shard.cell, shard.interior).size == 0


def test_a_maximal_wave_plan_does_not_hold_up_an_unrelated_approval(world, monkeypatch):
    """Planning a wave is CPU work on its geometry (0.25 s at the 500 km ceiling; before the
    ceiling held, a China-sized drawn area took 101 s). It runs before the start transaction,
    so an approval elsewhere never waits on it: not for the audit lock on PostgreSQL, nor the
    write lock on SQLite. The plan is held for 3 s here so any waiting would show."""
    case_a = approved_case(world, minutes_ago=4 * 60)
    with session_scope() as s:
        wave = s.scalars(select(Wave).where(Wave.case_id == case_a, Wave.index == 0)).one()
        assert wave.radius_km == 500.0, "last seen 4 h ago: the first wave is at the ceiling"
        outbox_id = s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()))
        wave_id = wave.id
    payload = case_payload()
    payload["last_seen"]["lat"], payload["last_seen"]["lon"] = place(800.0)
    with session_scope() as s:
        officer = s.get(User, world["officer"])
        case_b = cases.create(s, CaseCreate.model_validate(payload), officer, get_settings()).id
        cases.submit(s, case_b, officer)

    planning, real_plan = threading.Event(), targeting.plan

    def held_plan(area):
        planning.set()
        time.sleep(3.0)
        return real_plan(area)

    monkeypatch.setattr(targeting, "plan", held_plan)
    starter = threading.Thread(target=flows.start_wave, args=(outbox_id, wave_id))
    starter.start()
    try:
        assert planning.wait(10), "the wave's plan never started"
        began = time.monotonic()
        with session_scope() as s:
            cases.approve(s, case_b, s.get(User, world["sup"]))
        waited = time.monotonic() - began
    finally:
        starter.join(30)
    assert waited < 1.0, f"the approval waited {waited:.2f} s behind a wave's plan"
    with session_scope() as s:
        assert s.get(Wave, wave_id).status == "started", "the held plan still started its wave"
