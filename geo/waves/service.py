"""The wave engine: plan a case's expanding waves, start them when due, target shard by shard.

approve -> plan waves (epoch 0) -> each due wave gets an outbox row -> start_wave task creates
the message and one target_shard task per shard -> each shard claims its not-yet-alerted
devices once (geo.waves.claims) and hands them to the channel fan-out.
A sighting cancels the pending waves and plans a new epoch from the new place; resolving or
cancelling stops everything at once because every step re-checks that the case is active.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.audit import service as audit
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from alerts.db import utcnow
from alerts.dispatch import service as dispatch
from alerts.redis_client import get_redis
from geo import areas, rules, targeting
from geo.devices import service as devices
from geo.index import RECORD
from geo.rulesets import service as rulesets
from geo.waves import claims
from geo.waves.models import CaseGeo, Sighting, Wave

START_WAVE = "reunite.geo.start_wave"
TARGET_SHARD = "reunite.geo.target_shard"
NOTIFY_ALERTED = "reunite.geo.notify_alerted"
# All alert waves of a case share one bitmap: a device is alerted once per case.
ALERT_LEDGER = "alert"
PENDING = ("scheduled", "queued", "targeting")
# Above this many candidates a shard filters out already-alerted devices before claiming.
SNAPSHOT_MIN = 20_000


class WaveConflict(Exception):
    """The case is not in a state that allows this (HTTP 409)."""


def ledger(case_id: str) -> targeting.AlertLedger:
    """The case's alerted-devices bitmap."""
    return targeting.AlertLedger(get_redis(), case_id, ALERT_LEDGER)


def area_of(wave: Wave) -> areas.Area:
    """The wave's area as a geometry."""
    if wave.area.get("vertices"):
        return areas.Area.from_vertices([tuple(v) for v in wave.area["vertices"]])
    assert wave.radius_km is not None
    return areas.Area.circle(wave.center_lat, wave.center_lon, wave.radius_km)


def area_json(wave: Wave) -> dict[str, Any]:
    """The wave's area as channels and feeds carry it (CAP forms at 6 decimals)."""
    area = area_of(wave)
    return {
        "cap_circle": area.cap_circle() if wave.radius_km is not None else None,
        "cap_polygon": area.cap_polygon(),
        "radius_km": wave.radius_km,
        "center": [wave.center_lat, wave.center_lon],
    }


def case_override(state: CaseGeo | None) -> rules.CaseOverride | None:
    """The supervisor's override for a case, as the pure rules module takes it."""
    if state is None:
        return None
    area = None
    if state.area_vertices:
        area = areas.Area.from_vertices([tuple(v) for v in state.area_vertices])
    return rules.CaseOverride(start_radius_km=state.start_radius_km, cap_km=state.cap_km, area=area)


def _geo_state(session: Session, case_id: str) -> CaseGeo:
    state = session.get(CaseGeo, case_id)
    if state is None:
        state = CaseGeo(case_id=case_id, epoch=0)
        session.add(state)
        session.flush()
    return state


def plan(session: Session, case: Case, now: datetime) -> list[Wave]:
    """Plan the case's waves for its current epoch from its last-seen place and time."""
    state = _geo_state(session, case.id)
    version, rule_set, regions = rulesets.current(session)
    state.rule_version = version
    schedule = rules.waves(
        rule_set,
        min(case.last_seen_at, now),
        now,
        case.last_seen_lat,
        case.last_seen_lon,
        regions,
        case_override=case_override(state),
    )
    rows = []
    for w in schedule:
        row = Wave(
            case_id=case.id,
            epoch=state.epoch,
            index=w.index,
            starts_at=w.starts_at,
            radius_km=w.radius_km,
            center_lat=case.last_seen_lat,
            center_lon=case.last_seen_lon,
            area={"vertices": [list(v) for v in w.area.vertices]} if w.radius_km is None else {},
            rule_version=version,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def queue_due(session: Session, now: datetime, case_id: str | None = None) -> int:
    """Give every due wave of an active case an outbox row (beat calls this on each tick)."""
    query = (
        select(Wave)
        .join(Case, Case.id == Wave.case_id)
        .where(
            Wave.status == "scheduled",
            Wave.starts_at <= now,
            Case.state == CaseState.ACTIVE.value,
        )
        .order_by(Wave.starts_at)
        .with_for_update(of=Wave, skip_locked=True)
    )
    if case_id is not None:
        query = query.where(Wave.case_id == case_id)
    count = 0
    for wave in session.scalars(query):
        wave.status = "queued"
        dispatch.enqueue(session, START_WAVE, [wave.id])
        count += 1
    return count


def cancel_pending(session: Session, case_id: str) -> int:
    """Cancel every wave of the case that has not finished starting."""
    count = 0
    for wave in session.scalars(
        select(Wave).where(Wave.case_id == case_id, Wave.status.in_(PENDING))
    ):
        wave.status = "cancelled"
        count += 1
    return count


@dispatch.on("approved")
def on_approved(session: Session, case_id: str, _outbox_id: int) -> None:
    """Plan the waves of a newly active case and queue the first one."""
    case = session.get(Case, case_id)
    if case is None or case.state != CaseState.ACTIVE.value:
        return
    now = utcnow()
    plan(session, case, now)
    queue_due(session, now, case_id)


def _on_closed(kind: str):
    def handler(session: Session, case_id: str, _outbox_id: int) -> None:
        cancel_pending(session, case_id)
        if kind != "expired":
            _queue_notice(session, case_id, kind, wave=None)

    return handler


for _kind in ("resolved", "cancelled", "expired"):
    dispatch.on(_kind)(_on_closed(_kind))


@dispatch.on("updated")
def on_updated(session: Session, case_id: str, _outbox_id: int) -> None:
    """An active case's details changed: tell the devices and partners already alerted."""
    case = session.get(Case, case_id)
    if case is not None and case.state == CaseState.ACTIVE.value:
        _queue_notice(session, case_id, "update", wave=None)


def _queue_notice(session: Session, case_id: str, kind: str, wave: Wave | None) -> None:
    """Create a message for devices already alerted (and partners), queued via the outbox."""
    from channels import service as channels

    area = area_json(wave) if wave is not None else None
    message = channels.create_message(session, case_id, kind, wave.index if wave else 0, area)
    dispatch.enqueue(session, NOTIFY_ALERTED, [case_id, message.id])


@dataclass(frozen=True)
class WaveStart:
    """What start_wave needs to enqueue once its transaction has committed."""

    wave_id: int
    message_id: str
    shards: list[targeting.ShardPlan]
    # Above the operator's threshold FCM goes by geo-cell topic, one message per covering cell
    # (subscribers to a topic need not be in our registry, so empty shards count here).
    topic_cells: list[int]
    fcm_topics: bool
    languages: list[str]


def shard_sizes(shards: list[targeting.ShardPlan]) -> list[int]:
    """Records in each shard's log (one pipelined STRLEN each): an upper bound on its devices,
    since superseded records count too."""
    index = devices.location_index()
    pipe = index.client.pipeline(transaction=False)
    for shard in shards:
        pipe.strlen(index.log_key(shard.cell))
    return [n // RECORD.itemsize for n in pipe.execute()]


def estimate_devices(shards: list[targeting.ShardPlan]) -> int:
    """Upper bound on the devices a wave reaches, cheap enough to run before targeting."""
    return sum(shard_sizes(shards))


def begin_wave(session: Session, wave_id: int) -> WaveStart | None:
    """Create the wave's message and list its shards; None if the wave must not run."""
    from channels import service as channels

    wave = session.scalars(select(Wave).where(Wave.id == wave_id).with_for_update()).one_or_none()
    if wave is None or wave.status in ("started", "cancelled"):
        return None
    case = session.get(Case, wave.case_id)
    if case is None or case.state != CaseState.ACTIVE.value:
        wave.status = "cancelled"
        return None
    if wave.message_id is None:
        message = channels.create_message(session, case.id, "alert", wave.index, area_json(wave))
        wave.message_id = message.id
        audit.record(
            session,
            actor="system",
            action="wave.started",
            subject=f"case:{case.id}",
            detail={"wave": wave.index, "epoch": wave.epoch, "radius_km": wave.radius_km},
        )
    covering = targeting.plan(area_of(wave))
    sizes = shard_sizes(covering)
    # Empty shards hold no device to target, so they get no task; the fullest go first so the
    # first pushes leave sooner. (A device located in an empty shard after this instant is
    # missed by this wave, as it would be by a shard task that had already read its log.)
    shards = [s for n, s in sorted(zip(sizes, covering, strict=True), key=lambda p: -p[0]) if n]
    client = get_redis()
    # Decided once per wave and kept, so a redelivered start or shard task decides the same.
    decided = client.hget(stats_key(wave.id), "fcm_topics")
    if decided is None:
        decided = b"1" if channels.use_fcm_topics(sum(sizes)) else b"0"
        client.hsetnx(stats_key(wave.id), "fcm_topics", decided)
        decided = client.hget(stats_key(wave.id), "fcm_topics")
    wave.status = "targeting"
    wave.started_at = wave.started_at or utcnow()
    wave.shards = len(shards)
    return WaveStart(
        wave_id=wave.id,
        message_id=wave.message_id,
        shards=shards,
        topic_cells=[s.cell for s in covering],
        fcm_topics=decided == b"1",
        languages=list(case.alert_languages),
    )


def finish_wave(session: Session, wave_id: int) -> None:
    """Mark a wave started once all its shard tasks are queued."""
    wave = session.get(Wave, wave_id)
    if wave is not None and wave.status == "targeting":
        wave.status = "started"


def stats_key(wave_id: int) -> str:
    return f"wave:{wave_id}:stats"


def uses_fcm_topics(wave_id: int) -> bool:
    """Whether this wave reaches FCM devices by geo-cell topic instead of per token."""
    return get_redis().hget(stats_key(wave_id), "fcm_topics") == b"1"


def target_shard(session: Session, wave_id: int, cell: int, interior: bool) -> np.ndarray:
    """Claim the shard's devices for this wave (once) and return them for fan-out."""
    wave = session.get(Wave, wave_id)
    if wave is None or wave.status == "cancelled" or wave.message_id is None:
        return np.empty(0, dtype=np.int64)
    case = session.get(Case, wave.case_id)
    if case is None or case.state != CaseState.ACTIVE.value:
        return np.empty(0, dtype=np.int64)
    client = get_redis()
    case_ledger = ledger(case.id)
    record = f"claimed:{{{case.id}}}:{wave.id}:{cell:x}"
    candidates = np.empty(0, dtype=np.int64)
    if not client.exists(record):
        candidates = targeting.devices_in_shard(
            devices.location_index(), targeting.ShardPlan(cell, interior), area_of(wave)
        )
        if len(candidates) > SNAPSHOT_MIN:
            # One GET of the bitmap is cheaper than that many SETBITs in the claim script
            # (which blocks Redis while it runs); small shards skip the transfer.
            candidates = candidates[~case_ledger.snapshot().contains(candidates)]
    claimed = claims.claim_once(client, case_ledger, record, candidates)
    if len(candidates):
        client.hincrby(stats_key(wave.id), "targeted", len(claimed))
    return claimed


def add_sighting(
    session: Session,
    case_id: str,
    *,
    at: datetime,
    lat: float,
    lon: float,
    address: str | None,
    note: str | None,
    user_id: int,
) -> Sighting:
    """Move the case's centre: cancel pending waves and plan a new epoch from the sighting."""
    case = session.scalars(select(Case).where(Case.id == case_id).with_for_update(of=Case)).one()
    if case.state != CaseState.ACTIVE.value:
        raise WaveConflict(f"case is {case.state}; sightings are added to active cases")
    now = utcnow()
    sighting = Sighting(
        case_id=case.id,
        at=at,
        lat=lat,
        lon=lon,
        address=address,
        note=note,
        created_by_id=user_id,
    )
    session.add(sighting)
    case.last_seen_at, case.last_seen_lat, case.last_seen_lon = at, lat, lon
    if case.details is not None and address:
        case.details.last_seen_address = address
    case.updated_at = now
    case.version += 1
    cancel_pending(session, case.id)
    state = _geo_state(session, case.id)
    state.epoch += 1
    plan(session, case, now)
    queue_due(session, now, case.id)
    _queue_notice(session, case.id, "update", wave=None)
    audit.record(
        session,
        actor=f"user:{user_id}",
        action="case.sighting_added",
        subject=f"case:{case.id}",
        detail={"epoch": state.epoch},
    )
    return sighting


def set_override(
    session: Session,
    case_id: str,
    *,
    start_radius_km: float | None,
    cap_km: float | None,
    vertices: list[tuple[float, float]] | None,
    reason: str,
    user_id: int,
) -> CaseGeo:
    """A supervisor's per-case override; an active case's pending waves are re-planned."""
    case = session.scalars(select(Case).where(Case.id == case_id).with_for_update(of=Case)).one()
    state = _geo_state(session, case.id)
    state.start_radius_km, state.cap_km = start_radius_km, cap_km
    state.area_vertices = [list(v) for v in vertices] if vertices else None
    case_override(state)  # validates; raises rules.RuleError / areas.AreaError
    state.override_by, state.override_reason = user_id, reason
    audit.record(
        session,
        actor=f"user:{user_id}",
        action="case.geo_override_set",
        subject=f"case:{case.id}",
        reason=reason,
        detail={
            "start_radius_km": start_radius_km,
            "cap_km": cap_km,
            "manual_area": bool(vertices),
        },
    )
    if case.state == CaseState.ACTIVE.value:
        # Devices already alerted stay excluded, so re-planning from now only adds reach.
        cancel_pending(session, case.id)
        state.epoch += 1
        now = utcnow()
        plan(session, case, now)
        queue_due(session, now, case.id)
    return state


def waves_of(session: Session, case_id: str) -> list[Wave]:
    """All waves of a case, in order."""
    return list(
        session.scalars(
            select(Wave).where(Wave.case_id == case_id).order_by(Wave.epoch, Wave.index)
        )
    )


def wave_stats(wave_ids: list[int]) -> dict[int, int]:
    """Devices targeted per wave (from the hot counters in Redis)."""
    client = get_redis()
    pipe = client.pipeline()
    for wid in wave_ids:
        pipe.hget(stats_key(wid), "targeted")
    return {wid: int(v or 0) for wid, v in zip(wave_ids, pipe.execute(), strict=True)}


def message_of(session: Session, wave_id: int) -> str | None:
    """The channel message a wave sends."""
    wave = session.get(Wave, wave_id)
    return wave.message_id if wave is not None else None


def alerted(case_id: str) -> np.ndarray:
    """Ids of every device alerted for the case so far."""
    return claims.alerted_ids(get_redis(), ledger(case_id))
