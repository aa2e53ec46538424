"""How an approved case becomes pushes: the one module that calls both geo.waves and channels.

Read top to bottom; each numbered step is a function below.

1. A case event comes out of the outbox (`alerts.dispatch.service.run_dispatch`), and
   `alerts.bootstrap.HANDLERS` picks its handlers by event class: `case_approved` plans the
   waves (`geo.waves.plan`) and queues the first; `case_updated` and the closing handlers
   queue a notice for everyone already told.
2. `queue_due` gives every due wave of an active case an outbox row for `START_WAVE` (beat
   calls it through `tick` too, as later waves come due).
3. `start_wave` creates the wave's channel message, lists its shards
   (`geo.waves.begin_targeting`) and queues one `TARGET_SHARD` task per non-empty shard, plus
   FCM cell topics, the carrier's area broadcast and the partners' webhooks.
4. `run_shard` claims the shard's devices not alerted before (`geo.waves.target_shard`) and
   hands them to `channels.fan_out_devices`, which queues the per-provider batches.
5. `notify_alerted` sends an update or closing notice to every device already alerted, to the
   partners, and (closing) to the cell topics and area broadcasts the alert used.
6. Live changes: `add_sighting` and `set_override` re-plan the waves from a new place; a
   change one officer may not make alone waits for `decide_change` (two-person rule).
7. `reconcile_shards` sends again any shard task past its deadline.
8. `alert_late_arrivals`: a device whose upload lands inside a live wave's area after the
   wave started (`geo.late`, checked at ingest) gets that wave's alert, once.

Every step re-reads the case and stops if it is no longer active; a closing commit also
withdraws whatever the channels still hold for the case (`channels.closure`).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import datetime

import h3
import numpy as np
from shapely.geometry import Polygon
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.cases import content
from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case, CaseChange
from alerts.cases.schemas import CaseUpdate
from alerts.feeds import public as public_feeds
from alerts.feeds import service as feeds
from alerts.users.models import User
from channels import closure, reconcile
from channels import service as channels
from channels.messages import MessageId, MessageKind
from geo import areas, late, rules
from geo.rulesets import service as rulesets
from geo.waves import service as waves
from geo.waves.models import CaseGeo, Sighting, Wave
from ops import metrics
from ops.platform.audit import service as audit
from ops.platform.celery_app import celery_app
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.outbox import service as outbox
from ops.platform.redis_client import get_redis

# Task names: queued work must survive a deploy, so these never change.
START_WAVE = "reunite.geo.start_wave"
TARGET_SHARD = "reunite.geo.target_shard"
NOTIFY_ALERTED = "reunite.geo.notify_alerted"
# Devices per channel hand-over when a notice goes to everyone already alerted.
NOTICE_CHUNK = 10_000
# Shard tasks queued and not yet finished: member "wave:cell:interior", score: deadline. A lost
# shard task is sent again by reconcile_shards, so losing one message loses no device.
SHARDS_OPEN = "geo:shards:open"


class WaveConflict(Exception):
    """The case is not in a state that allows this (HTTP 409)."""


class SightingRefused(ValueError):
    """A sighting that cannot move the case (HTTP 422); names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _active(case: Case | None) -> bool:
    return case is not None and case.state == CaseState.ACTIVE.value


def _drill(session: Session, case_id: str) -> bool:
    """A drill or system test whose audience is restricted (test devices only)."""
    return content.restricted_audience(session, case_id)


# 1. Case events -------------------------------------------------------------------------


def case_approved(session: Session, case_id: str, _outbox_id: int) -> None:
    """Plan the waves of a newly active case and queue the first one."""
    case = session.get(Case, case_id)
    if not _active(case):
        return
    now = utcnow()
    waves.plan(session, case, now)
    queue_due(session, now, case_id)


def case_updated(session: Session, case_id: str, _outbox_id: int) -> None:
    """An active case's details changed: tell the devices and partners already alerted."""
    if _active(session.get(Case, case_id)):
        _queue_notice(session, case_id, MessageKind.UPDATE)


def _stop(session: Session, case_id: str) -> None:
    # The closing commit already withdrew queued alerts (alerts.cases.service); marking again
    # here covers a Redis that was away at that instant.
    closure.close_case(get_redis(), case_id)
    late.withdraw(get_redis(), case_id)
    waves.cancel_pending(session, case_id)
    # The public case page and feeds are cached for seconds; a closed alert's page must not
    # go on showing the child's details until the cache runs out.
    public_feeds.forget()


def case_resolved(session: Session, case_id: str, _outbox_id: int) -> None:
    """The child was found: stop the waves and tell everyone who was alerted."""
    _stop(session, case_id)
    _queue_notice(session, case_id, MessageKind.RESOLVED)


def case_cancelled(session: Session, case_id: str, _outbox_id: int) -> None:
    """The alert was withdrawn: stop the waves and tell everyone who was alerted."""
    _stop(session, case_id)
    _queue_notice(session, case_id, MessageKind.CANCELLED)


def case_expired(session: Session, case_id: str, _outbox_id: int) -> None:
    """The alert outlived its lifetime: stop the waves and tell partners and feeds it ended
    (alert.expired, a CAP Cancel); devices get no push for it."""
    _stop(session, case_id)
    _queue_notice(session, case_id, MessageKind.EXPIRED)


# 2. Waves come due ----------------------------------------------------------------------


def queue_due(session: Session, now: datetime, case_id: str | None = None) -> int:
    """Give every due wave of an active case an outbox row (beat calls this on each tick)."""
    query = select(Case.id).where(Case.state == CaseState.ACTIVE.value)
    if case_id is not None:
        query = query.where(Case.id == case_id)
    due = waves.due_waves(session, now, session.scalars(query).all())
    for wave in due:
        outbox.enqueue(session, START_WAVE, [wave.id])
    return len(due)


def tick() -> int:
    """Queue every wave whose time has come; returns how many."""
    with session_scope() as session:
        return queue_due(session, utcnow())


# 3. A wave starts -----------------------------------------------------------------------


def begin_wave(
    session: Session, wave_id: int, planned: waves.Coverage | None = None
) -> waves.WaveStart | None:
    """Create the wave's message and list its shards; None if the wave must not run.

    `planned` is the wave's coverage, planned outside this transaction (`start_wave` does it
    in a read-only session of its own); without it the plan is made here, before any lock.
    """
    if planned is None:
        planned = waves.coverage(session, wave_id)
    wave = waves.lock_for_start(session, wave_id)
    if wave is None or planned is None:
        return None
    case = session.get(Case, wave.case_id)
    if not _active(case):
        wave.status = "cancelled"
        return None
    if wave.message_id is None:
        message = channels.create_message(
            session, case.id, MessageKind.ALERT, wave.index, waves.published_area(wave)
        )
        wave.message_id = message.id
        audit.record(
            session,
            actor="system",
            action="wave.started",
            subject=f"case:{case.id}",
            detail={"wave": wave.index, "epoch": wave.epoch, "radius_km": wave.radius_km},
        )
        feeds.publish(session, case, get_settings())  # the CAP document, as of now
    start = waves.begin_targeting(
        session, wave, case.alert_languages, channels.use_fcm_topics, utcnow(), planned
    )
    return replace(start, drill=_drill(session, case.id))


def start_wave(outbox_id: int, wave_id: int) -> int:
    """Start a due wave: one targeting task per non-empty shard, then topics, area, partners."""
    # Planning is CPU work on the wave's geometry: it runs before the start transaction, so
    # the wave row and the audit lock (which every approval takes) are held for milliseconds.
    with session_scope() as session:
        planned = waves.coverage(session, wave_id)
    with session_scope() as session:
        start = begin_wave(session, wave_id, planned)
        if start is None:
            outbox.complete(session, outbox_id)
    if start is None:
        return 0
    metrics.WAVES_STARTED.inc()
    open_late_area(wave_id)
    # Queued after the commit; a redelivery re-queues them all and the claims make that harmless.
    # The fullest shard comes first, in the urgent lane: the wave's first pushes never wait
    # behind another case's bulk. The others follow in the bulk lane.
    deadline = time.time() + get_settings().channels.owner_grace_s
    if start.shards:
        owed = {_shard_member(wave_id, s.cell, s.interior): deadline for s in start.shards}
        get_redis().zadd(SHARDS_OPEN, owed)
    for n, shard in enumerate(start.shards):
        _send_shard(wave_id, shard.cell, shard.interior, channels.URGENT if n == 0 else None)
    if not start.drill:
        # Cell topics and the carrier's area broadcast reach everyone there: never a drill.
        if start.fcm_topics:
            topics = [h3.int_to_str(c) for c in start.topic_cells]
            channels.fan_out_topics(start.message_id, topics)
        channels.broadcast_area(start.message_id, start.languages)
    channels.fan_out_partners(start.message_id)
    with session_scope() as session:
        waves.finish_wave(session, wave_id)
        outbox.complete(session, outbox_id)
    return len(start.shards)


# 4. A shard is targeted -----------------------------------------------------------------


def _shard_member(wave_id: int, cell: int, interior: bool) -> str:
    return f"{wave_id}:{cell:x}:{int(interior)}"


def _send_shard(wave_id: int, cell: int, interior: bool, priority: int | None) -> None:
    celery_app.send_task(
        TARGET_SHARD,
        args=[wave_id, cell, interior],
        task_id=f"shard-{wave_id}-{cell:x}",
        priority=channels.BULK if priority is None else priority,
    )


def target_shard(session: Session, wave_id: int, cell: int, interior: bool) -> np.ndarray:
    """Claim the shard's devices for this wave (once) while its case is active."""
    wave = session.get(Wave, wave_id)
    if wave is None or not _active(session.get(Case, wave.case_id)):
        return np.empty(0, dtype=np.int64)
    return waves.target_shard(wave, cell, interior)


def run_shard(wave_id: int, cell: int, interior: bool) -> int:
    """Claim one shard's not-yet-alerted devices and hand them to the channels."""
    with session_scope() as session, metrics.TARGETING_SECONDS.time():
        claimed = target_shard(session, wave_id, cell, interior)
        message_id = waves.message_of(session, wave_id)
        drill = bool(len(claimed)) and _drill(session, MessageId.case_of(message_id or ""))
    metrics.SHARDS_TARGETED.inc()
    metrics.DEVICES_TARGETED.inc(len(claimed))
    if len(claimed) and message_id:
        channels.fan_out_devices(
            message_id,
            claimed.tolist(),
            fcm_via_topics=waves.topic_covers(wave_id, cell) and not drill,
            test_only=drill,
        )
    # Only now is the shard's work handed on (the claim gives a re-run the same devices).
    get_redis().zrem(SHARDS_OPEN, _shard_member(wave_id, cell, interior))
    return len(claimed)


def reconcile_shards(now: float | None = None) -> int:
    """Send again every shard task past its deadline (lost, or its worker died); how many."""
    now = time.time() if now is None else now
    client = get_redis()
    grace = get_settings().channels.owner_grace_s
    sent = 0
    for raw in client.zrangebyscore(SHARDS_OPEN, "-inf", now, start=0, num=500):
        member = raw.decode() if isinstance(raw, bytes) else raw
        if not reconcile.claim_overdue(client, SHARDS_OPEN, member, now, grace):
            continue
        wave_id, cell, interior = member.split(":")
        _send_shard(int(wave_id), int(cell, 16), interior == "1", channels.URGENT)
        sent += 1
    return sent


# 8. Late arrivals ------------------------------------------------------------------------


def open_late_area(wave_id: int) -> bool:
    """Make a started wave its case's area for late arrivals, if the rule set in force says so
    (the operator's `alert_late_arrivals`); closing the case withdraws it (`_stop`)."""
    with session_scope() as session:
        wave = session.get(Wave, wave_id)
        if wave is None or not rulesets.alerts_late_arrivals(session):
            return False
        if not _active(session.get(Case, wave.case_id)):
            return False
        waves.publish_live_area(wave)
    return True


def alert_late_arrivals(token: str, device_ids: str, cases: list[list]) -> int:
    """Send each live wave's alert to the uploaded devices inside its area that were never
    alerted for the case (one upload's arrivals, packed by `geo.late.send`); how many."""
    return sum(
        _alert_late(a.case_id, a.wave_id, a.device_ids, token)
        for a in late.decode_arrivals(device_ids, cases)
    )


def _alert_late(case_id: str, wave_id: int, device_ids: np.ndarray, token: str) -> int:
    """One case's arrivals; nothing once the case is closed or the operator's setting is off."""
    with session_scope() as session:
        wave = session.get(Wave, wave_id)
        if (
            wave is None
            or wave.case_id != case_id
            or wave.message_id is None
            or wave.status not in ("targeting", "started")
            or not _active(session.get(Case, case_id))
            or not rulesets.alerts_late_arrivals(session)
        ):
            return 0
        message_id = wave.message_id
        drill = _drill(session, case_id)
    claimed = waves.claim_late(case_id, wave_id, token, device_ids)
    metrics.DEVICES_TARGETED.inc(len(claimed))
    if len(claimed):
        # Per device, never by cell topic: the topic's subscribers heard the wave already.
        channels.fan_out_devices(message_id, claimed.tolist(), test_only=drill)
    return len(claimed)


# 5. Notices to everyone already told ----------------------------------------------------


def _queue_notice(session: Session, case_id: str, kind: MessageKind) -> None:
    """Create a message for devices already alerted (and partners), queued via the outbox.

    A closing notice carries the newest alert's area, so a carrier's area broadcast can reach
    the same people the alert did.
    """
    area = channels.latest_area(session, case_id) if kind.closes else None
    message = channels.create_message(session, case_id, kind, 0, area)
    feeds.publish(session, session.get(Case, case_id), get_settings())
    outbox.enqueue(session, NOTIFY_ALERTED, [case_id, message.id])


def notify_alerted(outbox_id: int, case_id: str, message_id: str) -> int:
    """Send an update or closing notice to every device alerted for the case, and partners."""
    ids = waves.alerted(case_id)
    kind = MessageId.parse(message_id).kind
    closes = kind in (MessageKind.RESOLVED, MessageKind.CANCELLED)
    # Operators choose whether the closing notice is pushed to alerted devices (partners
    # always get it); an expiry is never pushed to phones.
    if kind is MessageKind.EXPIRED or (closes and not get_settings().closing_push_to_devices):
        ids = ids[:0]
    with session_scope() as session:
        drill = _drill(session, case_id)
        topics, broadcast = channels.told_by_area(session, case_id) if closes else ([], False)
        languages = list(session.get(Case, case_id).alert_languages) if broadcast else []
    # Those the alert reached by cell topic or area broadcast hear the closure the same way.
    if topics:
        channels.fan_out_topics(message_id, topics)
    if broadcast:
        channels.broadcast_area(message_id, languages)
    for start in range(0, len(ids), NOTICE_CHUNK):
        chunk = ids[start : start + NOTICE_CHUNK].tolist()
        channels.fan_out_devices(message_id, chunk, test_only=drill)
    channels.fan_out_partners(message_id)
    with session_scope() as session:
        outbox.complete(session, outbox_id)
    return len(ids)


# 6. Live changes: sightings and overrides -----------------------------------------------


def check_sighting(case: Case, at: datetime) -> None:
    """Refuse a sighting that would move the case back in time (names the field)."""
    if at < case.last_seen_at:
        # An older sighting would move the centre back and restart the waves from the past.
        raise SightingRefused(
            "at", "must not be earlier than the last sighting or last-seen time of the case"
        )


def moves_too_far(case: Case, lat: float, lon: float) -> bool:
    """Whether a sighting moves the centre beyond what one officer may do alone."""
    distance_m = float(areas.geodesic_distance_m(case.last_seen_lat, case.last_seen_lon, lat, lon))
    return distance_m > get_settings().live_change_max_km * 1000


def decide_change(
    session: Session, case_id: str, change_id: int, supervisor: User, *, approve: bool
) -> CaseChange:
    """A second supervisor approves (the change goes out) or rejects a pending live change."""
    case, change = cases.decide_change(session, case_id, change_id, supervisor, approve=approve)
    if not approve:
        return change
    payload = dict(change.payload or {})
    if change.kind == cases.ChangeKind.DETAILS:
        data = CaseUpdate.model_validate(payload)
        cases.apply_update(
            session, case, data, get_settings(), actor=f"user:{change.submitted_by_id}"
        )
    elif change.kind == cases.ChangeKind.AREA:
        set_override(
            session,
            case.id,
            start_radius_km=payload.get("start_radius_km"),
            cap_km=payload.get("cap_km"),
            vertices=[tuple(v) for v in payload["vertices"]] if payload.get("vertices") else None,
            reason=payload["reason"],
            user_id=change.submitted_by_id,
        )
    else:
        add_sighting(
            session,
            case.id,
            at=datetime.fromisoformat(payload["at"]),
            lat=payload["lat"],
            lon=payload["lon"],
            address=payload.get("address"),
            note=payload.get("note"),
            user_id=change.submitted_by_id,
        )
    return change


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
    check_sighting(case, at)
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
    if case.origin_at is None:
        # The first sighting: keep the place first reported, which the case page still shows.
        case.origin_at, case.origin_lat, case.origin_lon = (
            case.last_seen_at,
            case.last_seen_lat,
            case.last_seen_lon,
        )
        if case.details is not None:
            case.details.origin_address = case.details.last_seen_address
    case.last_seen_at, case.last_seen_lat, case.last_seen_lon = at, lat, lon
    if case.details is not None and address:
        case.details.last_seen_address = address
    case.updated_at = now
    case.version += 1
    waves.replan(session, case, now)
    queue_due(session, now, case.id)
    _queue_notice(session, case.id, MessageKind.UPDATE)
    audit.record(
        session,
        actor=f"user:{user_id}",
        action="case.sighting_added",
        subject=f"case:{case.id}",
        detail={"epoch": waves.geo_state(session, case.id).epoch},
    )
    return sighting


def widens_area(
    session: Session,
    case_id: str,
    *,
    start_radius_km: float | None,
    cap_km: float | None,
    vertices: list[tuple[float, float]] | None,
) -> bool:
    """Whether an override could reach places the case's current plan does not: a higher cap
    or start radius, dropping either, or a manual area not inside the current manual area
    (or dropping one). Narrowing stays one supervisor's call; widening needs a second."""
    state = waves.geo_state(session, case_id)

    def limit(value: float | None) -> float:
        return math.inf if value is None else value  # None: the rule set's own, unbounded here

    if limit(cap_km) > limit(state.cap_km) or limit(start_radius_km) > limit(state.start_radius_km):
        return True
    if not vertices:
        return bool(state.area_vertices)  # back from a manual area to the radius plan
    if not state.area_vertices:
        return True  # a drawn area replaces the radius plan: a second person checks it
    current = Polygon([(lon, lat) for lat, lon in state.area_vertices])
    proposed = Polygon([(lon, lat) for lat, lon in vertices])
    return not current.buffer(1e-9).contains(proposed)


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
    state = waves.geo_state(session, case.id)
    state.start_radius_km, state.cap_km = start_radius_km, cap_km
    state.area_vertices = [list(v) for v in vertices] if vertices else None
    waves.case_override(state)  # validates; raises rules.RuleError / areas.AreaError
    if vertices:
        _check_ceiling(session, case, vertices)
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
    if _active(case):
        now = utcnow()
        waves.replan(session, case, now)
        queue_due(session, now, case.id)
    return state


def _check_ceiling(session: Session, case: Case, vertices: list[tuple[float, float]]) -> None:
    """A drawn area must lie within the rule set's ceiling around the last-seen place (the
    500 km rule by default): a supervisor narrows or shapes an alert, never makes it national."""
    _version, rule_set, regions = rulesets.current(session)
    lat0, lon0 = case.last_seen_lat, case.last_seen_lon
    ceiling = rules.rules_for(rule_set, regions, lat0, lon0).max_radius_km
    lats = np.array([v[0] for v in vertices])
    lons = np.array([v[1] for v in vertices])
    km = np.asarray(areas.geodesic_distance_m(lat0, lon0, lats, lons)) / 1000.0
    worst = int(np.argmax(km))
    if km[worst] > ceiling:
        raise rules.RuleError(
            f"vertices[{worst}]",
            f"is {km[worst]:.0f} km from the last-seen place; a drawn area must lie within "
            f"{ceiling:g} km (the rule set's ceiling)",
        )


OVERRIDE_ERRORS = (rules.RuleError, areas.AreaError)
"""What `set_override` raises for a bad override (each names its field)."""


class DispatchProgress:
    """The channels' Progress port: approval times and whether a wave is fully targeted."""

    def approved_at(self, case_id: str) -> float | None:
        """When the case was approved (epoch seconds)."""
        with session_scope() as session:
            case = session.get(Case, case_id)
            return case.approved_at.timestamp() if case and case.approved_at else None

    def targeting_finished(self, message_id: str) -> bool:
        """Every shard of the message's wave was targeted (notices have no wave: True)."""
        with session_scope() as session:
            status = session.scalar(select(Wave.status).where(Wave.message_id == message_id))
        return status in (None, "started")
