"""Rule set versions over a session, and the reach preview against the live registry."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo import late, rules, targeting
from geo.index import LocationIndex
from geo.rulesets.models import RuleSetVersion
from geo.rulesets.schemas import (
    PreviewRead,
    RegionIn,
    RuleSetCreate,
    RuleSetRead,
    StepIn,
    WavePreview,
)
from ops.platform.audit import service as audit
from ops.platform.redis_client import get_redis


def _rule_set(steps: list[dict], max_radius_km: float) -> rules.RuleSet:
    return rules.RuleSet(
        steps=tuple(
            rules.Step(timedelta(minutes=s["up_to_minutes"]), float(s["radius_km"])) for s in steps
        ),
        max_radius_km=float(max_radius_km),
    )


def _steps_json(rule_set: rules.RuleSet) -> list[dict]:
    return [
        {"up_to_minutes": int(s.up_to.total_seconds() // 60), "radius_km": s.radius_km}
        for s in rule_set.steps
    ]


def latest(session: Session) -> RuleSetVersion | None:
    """The newest stored version, if any."""
    return session.scalar(select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1))


def current(session: Session) -> tuple[int, rules.RuleSet, list[rules.RegionOverride]]:
    """The rule set in force: the newest version, or the model system's default as version 0."""
    row = latest(session)
    if row is None:
        return 0, rules.DEFAULT_RULES, []
    regions = [
        rules.region_override(
            r["name"],
            [tuple(v) for v in r["vertices"]],
            _rule_set(r["steps"], r["max_radius_km"]),
            i,
        )
        for i, r in enumerate(row.regions)
    ]
    return row.version, _rule_set(row.steps, row.max_radius_km), regions


def alerts_late_arrivals(session: Session) -> bool:
    """Whether the rule set in force alerts devices that enter a live area later (default on)."""
    row = latest(session)
    return True if row is None else bool(row.alert_late_arrivals)


def read(session: Session) -> RuleSetRead:
    """The rule set in force as the API shows it."""
    row = latest(session)
    if row is None:
        return RuleSetRead(
            version=0,
            steps=[StepIn(**s) for s in _steps_json(rules.DEFAULT_RULES)],
            max_radius_km=rules.DEFAULT_RULES.max_radius_km,
            regions=[],
            alert_late_arrivals=True,
            note="built-in default (the model system's schedule)",
            created_by="system",
            created_at=None,
        )
    return _to_read(row)


def _to_read(row: RuleSetVersion) -> RuleSetRead:
    return RuleSetRead(
        version=row.version,
        steps=[StepIn(**s) for s in row.steps],
        max_radius_km=row.max_radius_km,
        regions=[RegionIn(**r) for r in row.regions],
        alert_late_arrivals=row.alert_late_arrivals,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def history(session: Session) -> list[RuleSetRead]:
    """Every stored version, newest first."""
    rows = session.scalars(select(RuleSetVersion).order_by(RuleSetVersion.version.desc()))
    return [_to_read(r) for r in rows]


def create_version(
    session: Session, data: RuleSetCreate, *, actor: str, ceiling_km: float
) -> RuleSetRead:
    """Validate and store a new version (raises rules.RuleError naming the bad row)."""
    steps = [s.model_dump() for s in data.steps]
    rules.validate(_rule_set(steps, data.max_radius_km), ceiling_km)
    regions = []
    for i, region in enumerate(data.regions):
        rules.region_override(
            region.name,
            region.vertices,
            _rule_set([s.model_dump() for s in region.steps], region.max_radius_km),
            i,
            ceiling_km,
        )
        regions.append(region.model_dump(mode="json"))
    version = (session.scalar(select(func.max(RuleSetVersion.version))) or 0) + 1
    row = RuleSetVersion(
        version=version,
        steps=steps,
        max_radius_km=data.max_radius_km,
        regions=regions,
        alert_late_arrivals=data.alert_late_arrivals,
        note=data.note,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    if not data.alert_late_arrivals:
        # The task re-checks the setting too; this only spares ingest the check.
        late.withdraw_all(get_redis())
    audit.record(
        session,
        actor=actor,
        action="rules.version_created",
        subject=f"rules:{version}",
        reason=data.note or None,
        detail={
            "steps": steps,
            "max_radius_km": data.max_radius_km,
            "regions": len(regions),
            "alert_late_arrivals": data.alert_late_arrivals,
        },
    )
    return _to_read(row)


def preview(
    session: Session,
    index: LocationIndex,
    *,
    lat: float,
    lon: float,
    last_seen_at: datetime,
    approved_at: datetime,
    case_override: rules.CaseOverride | None = None,
) -> PreviewRead:
    """The waves a case here would get and how many registered devices each newly reaches."""
    version, rule_set, regions = current(session)
    schedule = rules.waves(
        rule_set, last_seen_at, approved_at, lat, lon, regions, case_override=case_override
    )
    reached = np.empty(0, dtype=np.int64)
    previews = []
    for wave in schedule:
        parts = [
            targeting.devices_in_shard(index, shard, wave.area, now=approved_at)
            for shard in targeting.plan(wave.area)
        ]
        found = np.unique(np.concatenate(parts)) if parts else reached
        previews.append(
            WavePreview(
                index=wave.index,
                starts_at=wave.starts_at,
                radius_km=wave.radius_km,
                cap_circle=wave.area.cap_circle() if wave.radius_km is not None else None,
                cap_polygon=wave.area.cap_polygon(),
                devices_new=len(np.setdiff1d(found, reached, assume_unique=True)),
            )
        )
        reached = np.union1d(reached, found)
    return PreviewRead(rule_version=version, waves=previews, devices_total=len(reached))
