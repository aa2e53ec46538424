"""The wave engine: plan a case's expanding waves, start them when due, target shard by shard.

It knows places, times, areas and devices, never cases or channels: callers pass the case's
last-seen place (any object with `id`, `last_seen_at`, `last_seen_lat`, `last_seen_lon`) and
get values back (`WaveStart`, claimed device ids). `alerts.dispatch.flows` decides when a
case's waves run and hands what they claim to the channels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels import base
from geo import areas, late, rules, targeting
from geo.devices import service as devices
from geo.rulesets import service as rulesets
from geo.waves import claims
from geo.waves.models import CaseGeo, Wave
from ops.platform.redis_client import get_redis

# All alert waves of a case share one bitmap: a device is alerted once per case.
ALERT_LEDGER = "alert"
PENDING = ("scheduled", "queued", "targeting")
TOPICS_TTL_S = 8 * 24 * 3600
# Above this many candidates a shard filters out already-alerted devices before claiming.
SNAPSHOT_MIN = 20_000


class PlacedCase(Protocol):
    """What planning needs of a case: its id and last-seen place and time."""

    id: str
    last_seen_at: datetime
    last_seen_lat: float
    last_seen_lon: float


def ledger(case_id: str) -> targeting.AlertLedger:
    """The case's alerted-devices bitmap."""
    return targeting.AlertLedger(get_redis(), case_id, ALERT_LEDGER)


def area_of(wave: Wave) -> areas.Area:
    """The wave's area as a geometry."""
    if wave.area.get("vertices"):
        return areas.Area.from_vertices([tuple(v) for v in wave.area["vertices"]])
    assert wave.radius_km is not None
    return areas.Area.circle(wave.center_lat, wave.center_lon, wave.radius_km)


def published_area(wave: Wave) -> base.Area:
    """The wave's area as messages carry it to channels, feeds and partners."""
    area = area_of(wave)
    return base.Area(
        polygon=base.Area.parse_polygon(area.cap_polygon()),
        circle=area.cap_circle() if wave.radius_km is not None else None,
        radius_km=wave.radius_km,
        center=(wave.center_lat, wave.center_lon),
    )


def case_override(state: CaseGeo | None) -> rules.CaseOverride | None:
    """The supervisor's override for a case, as the pure rules module takes it."""
    if state is None:
        return None
    area = None
    if state.area_vertices:
        area = areas.Area.from_vertices([tuple(v) for v in state.area_vertices])
    return rules.CaseOverride(start_radius_km=state.start_radius_km, cap_km=state.cap_km, area=area)


def geo_state(session: Session, case_id: str) -> CaseGeo:
    """The case's wave epoch and override, created on first use."""
    state = session.get(CaseGeo, case_id)
    if state is None:
        state = CaseGeo(case_id=case_id, epoch=0)
        session.add(state)
        session.flush()
    return state


def plan(session: Session, case: PlacedCase, now: datetime) -> list[Wave]:
    """Plan the case's waves for its current epoch from its last-seen place and time."""
    state = geo_state(session, case.id)
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


def due_waves(session: Session, now: datetime, case_ids: Collection[str]) -> list[Wave]:
    """Mark every scheduled wave of these cases whose time has come as queued, and return them.

    Rows another transaction is queueing are skipped (SKIP LOCKED), so two beats never queue a
    wave twice.
    """
    if not case_ids:
        return []
    query = (
        select(Wave)
        .where(
            Wave.status == "scheduled",
            Wave.starts_at <= now,
            Wave.case_id.in_(list(case_ids)),
        )
        .order_by(Wave.starts_at)
        .with_for_update(skip_locked=True)
    )
    due = list(session.scalars(query))
    for wave in due:
        wave.status = "queued"
    return due


def cancel_pending(session: Session, case_id: str) -> int:
    """Cancel every wave of the case that has not finished starting."""
    count = 0
    for wave in session.scalars(
        select(Wave).where(Wave.case_id == case_id, Wave.status.in_(PENDING))
    ):
        wave.status = "cancelled"
        count += 1
    return count


@dataclass(frozen=True)
class WaveStart:
    """What start_wave needs to enqueue once its transaction has committed."""

    wave_id: int
    message_id: str
    shards: list[targeting.ShardPlan]
    # Above the operator's threshold FCM goes by geo-cell topic: one message per shard cell that
    # lies wholly inside this wave's area and outside every earlier wave's (subscribers need not
    # be in our registry, so empty shards count). Devices elsewhere go per token, so nobody is
    # alerted twice and the overshoot stays that of per-device targeting.
    topic_cells: list[int]
    fcm_topics: bool
    languages: list[str]
    # Set by the dispatch flow: a drill reaches test devices only, never topics or broadcasts.
    drill: bool = False


def shard_sizes(shards: list[targeting.ShardPlan]) -> list[int]:
    """Records in each shard's log (one pipelined STRLEN each): an upper bound on its devices,
    since superseded records count too."""
    return devices.location_index().record_counts([shard.cell for shard in shards])


def estimate_devices(shards: list[targeting.ShardPlan]) -> int:
    """Upper bound on the devices a wave reaches, cheap enough to run before targeting."""
    return sum(shard_sizes(shards))


@dataclass(frozen=True)
class Coverage:
    """A wave's shards and the cells earlier waves covered, planned before its start
    transaction: planning is the CPU-heavy part of a start (0.25 s for a 500 km circle) and
    must never run while the transaction holds the wave row and the audit lock."""

    wave_id: int
    covering: list[targeting.ShardPlan]
    earlier_ids: frozenset[int]
    told: frozenset[int]


def _earlier(session: Session, wave: Wave) -> list[Wave]:
    """The case's other waves that have started (their devices may already be alerted)."""
    return list(
        session.scalars(
            select(Wave).where(
                Wave.case_id == wave.case_id,
                Wave.id != wave.id,
                Wave.status.in_(("targeting", "started")),
            )
        )
    )


def coverage(session: Session, wave_id: int) -> Coverage | None:
    """Plan the wave's shards; reads only, so call it before (or outside) the transaction that
    starts the wave. None when the wave is gone."""
    wave = session.get(Wave, wave_id)
    if wave is None:
        return None
    area = area_of(wave)
    earlier = {w.id: area_of(w) for w in _earlier(session, wave)}
    return _cover(wave_id, area, earlier)


def _cover(wave_id: int, area: areas.Area, earlier: dict[int, areas.Area]) -> Coverage:
    return Coverage(
        wave_id=wave_id,
        covering=targeting.plan(area),
        earlier_ids=frozenset(earlier),
        told=targeting.covered_cells(earlier.values()),
    )


def lock_for_start(session: Session, wave_id: int) -> Wave | None:
    """The wave, locked for starting; None when it is gone, started or cancelled."""
    wave = session.scalars(select(Wave).where(Wave.id == wave_id).with_for_update()).one_or_none()
    if wave is None or wave.status in ("started", "cancelled"):
        return None
    return wave


def begin_targeting(
    session: Session,
    wave: Wave,
    languages: list[str],
    use_topics: Callable[[int], bool],
    now: datetime,
    planned: Coverage,
) -> WaveStart:
    """List the wave's shards (fullest first) and decide, once, whether FCM goes by topic.

    The wave must already carry its message id, and `planned` is its `coverage`, made before
    this transaction. `use_topics(devices)` is the channels' rule.
    """
    assert wave.message_id is not None and planned.wave_id == wave.id
    earlier = _earlier(session, wave)
    if {w.id for w in earlier} != planned.earlier_ids:
        # Another wave of the case started since the plan was made (rare): cover it too.
        planned = _cover(wave.id, area_of(wave), {w.id: area_of(w) for w in earlier})
    covering = planned.covering
    sizes = shard_sizes(covering)
    # Empty shards hold no device to target, so they get no task; the fullest go first so the
    # first pushes leave sooner. (A device located in an empty shard after this instant is
    # missed by this wave, as it would be by a shard task that had already read its log.)
    shards = [s for n, s in sorted(zip(sizes, covering, strict=True), key=lambda p: -p[0]) if n]
    client = get_redis()
    # Decided once per wave and kept, so a redelivered start or shard task decides the same.
    decided = client.hget(stats_key(wave.id), "fcm_topics")
    if decided is None:
        decided = b"1" if use_topics(sum(sizes)) else b"0"
        client.hsetnx(stats_key(wave.id), "fcm_topics", decided)
        decided = client.hget(stats_key(wave.id), "fcm_topics")
    topic_cells = targeting.topic_cells(covering, planned.told) if decided == b"1" else []
    if topic_cells:
        client.sadd(topics_key(wave.id), *topic_cells)
        client.expire(topics_key(wave.id), TOPICS_TTL_S)
    wave.status = "targeting"
    wave.started_at = wave.started_at or now
    wave.shards = len(shards)
    return WaveStart(
        wave_id=wave.id,
        message_id=wave.message_id,
        shards=shards,
        topic_cells=topic_cells,
        fcm_topics=decided == b"1",
        languages=list(languages),
    )


def topics_key(wave_id: int) -> str:
    return f"wave:{wave_id}:topics"


def topic_covers(wave_id: int, cell: int) -> bool:
    """Whether this wave reaches the shard's FCM devices by its cell topic (not per token)."""
    return bool(get_redis().sismember(topics_key(wave_id), cell))


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


def target_shard(wave: Wave, cell: int, interior: bool) -> np.ndarray:
    """Claim the shard's devices for this wave (once) and return them for fan-out.

    The caller has checked that the wave's case is still active.
    """
    if wave.status == "cancelled" or wave.message_id is None:
        return np.empty(0, dtype=np.int64)
    client = get_redis()
    case_ledger = ledger(wave.case_id)
    record = claim_record(wave.case_id, wave.id, cell)
    candidates = np.empty(0, dtype=np.int64)
    if not claims.is_recorded(client, case_ledger, record):
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


def claim_record(case_id: str, wave_id: int, cell: int) -> str:
    """The Redis key of what one shard task claimed for a wave (kept CLAIM_TTL_SECONDS)."""
    return f"claimed:{{{case_id}}}:{wave_id}:{cell:x}"


def claimed_by_shard(case_id: str, wave_id: int) -> dict[int, np.ndarray]:
    """The device ids each resolution-5 shard cell claimed for a wave, from the claim records
    of every ledger partition (empty once they expire)."""
    client = get_redis()
    prefix = claim_record(case_id, wave_id, 0)[: -len("0")]
    # One SCAN for all partitions: `{<case>:*}` matches every partition's tag.
    pattern = prefix.replace(f"{{{case_id}}}", f"{{{case_id}:*}}", 1) + "*"
    out: dict[int, list[np.ndarray]] = {}
    for key in client.scan_iter(match=pattern):
        name = key.decode() if isinstance(key, bytes) else key
        tag, _, rest = name.partition("}")
        if not rest.startswith(prefix[prefix.index("}") + 1 :]):
            continue
        cell = int(name.rsplit(":", 1)[1], 16)
        part = claims.decode(client.get(key), int(tag.rsplit(":", 1)[1]))
        out.setdefault(cell, []).append(part)
    return {cell: np.sort(np.concatenate(parts)) for cell, parts in out.items()}


def publish_live_area(wave: Wave) -> None:
    """Make a started wave its case's live area for late arrivals (`geo.late`)."""
    late.publish(get_redis(), wave.case_id, wave.id, wave.epoch, wave.index, area_of(wave))


def claim_late(case_id: str, wave_id: int, token: str, device_ids: np.ndarray) -> np.ndarray:
    """Claim late arrivals in the case's alerted bitmap: those never alerted come back (and a
    redelivered task with the same token gets the same ones back)."""
    client = get_redis()
    case_ledger = ledger(case_id)
    ids = np.asarray(device_ids, dtype=np.int64)
    if len(ids) > SNAPSHOT_MIN:
        # Most of a large upload inside an area was told by the wave already.
        ids = ids[~case_ledger.snapshot().contains(ids)]
    record = f"claimed:{{{case_id}}}:late:{token}"
    claimed = claims.claim_once(client, case_ledger, record, ids)
    if len(claimed):
        client.hincrby(stats_key(wave_id), "late", len(claimed))
    return claimed


def replan(session: Session, case: PlacedCase, now: datetime) -> list[Wave]:
    """Cancel the case's pending waves and plan a new epoch from its (new) last-seen place.

    Devices already alerted stay excluded, so re-planning only adds reach.
    """
    cancel_pending(session, case.id)
    geo_state(session, case.id).epoch += 1
    return plan(session, case, now)


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
