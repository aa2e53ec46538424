"""Radius rules: how far an alert reaches as time since the loss grows, and the wave schedule.

The default is the model system's table: up to 1 h 100 km, up to 2 h 200 km, up to 3 h
300 km, beyond that 500 km. A step applies while the elapsed time is <= its ``up_to``; the
next radius starts the moment a boundary passes, and each growth is a new wave. A child lost
90 minutes before approval gets wave 0 at 200 km, wave 1 at 300 km when 2 h have passed since
the loss, and wave 2 at 500 km when 3 h have passed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from geo import areas

DEFAULT_CEILING_KM = 1000.0


class RuleError(ValueError):
    """A rule set or override is invalid; ``field`` names the row, e.g. ``steps[2].radius_km``."""

    def __init__(self, field_: str, message: str) -> None:
        super().__init__(f"{field_}: {message}")
        self.field = field_


@dataclass(frozen=True)
class Step:
    """Radius that applies while the time since the loss is at most ``up_to``."""

    up_to: timedelta
    radius_km: float


@dataclass(frozen=True)
class RuleSet:
    """Steps in increasing order plus the radius beyond the last one."""

    steps: tuple[Step, ...]
    max_radius_km: float

    def radius_at(self, elapsed: timedelta) -> float:
        """Radius in km for this time since the loss."""
        for step in self.steps:
            if elapsed <= step.up_to:
                return step.radius_km
        return self.max_radius_km


DEFAULT_RULES = RuleSet(
    steps=(
        Step(timedelta(hours=1), 100.0),
        Step(timedelta(hours=2), 200.0),
        Step(timedelta(hours=3), 300.0),
    ),
    max_radius_km=500.0,
)


def _fmt(km: float) -> str:
    return f"{km:g}"


def validate(rule_set: RuleSet, ceiling_km: float = DEFAULT_CEILING_KM, where: str = "") -> RuleSet:
    """Return ``rule_set`` if valid, else raise ``RuleError`` naming the first bad row."""
    prev: Step | None = None
    for i, step in enumerate(rule_set.steps):
        row = f"{where}steps[{i}]"
        if not step.up_to > timedelta(0):
            raise RuleError(f"{row}.up_to", f"must be a positive duration, got {step.up_to}")
        if not (math.isfinite(step.radius_km) and step.radius_km > 0):
            raise RuleError(f"{row}.radius_km", f"must be greater than 0, got {step.radius_km}")
        if step.radius_km > ceiling_km:
            raise RuleError(f"{row}.radius_km", f"must be at most {_fmt(ceiling_km)} (ceiling)")
        if prev is not None:
            if step.up_to <= prev.up_to:
                raise RuleError(
                    f"{row}.up_to", f"must be later than {prev.up_to} ({where}steps[{i - 1}])"
                )
            if step.radius_km <= prev.radius_km:
                raise RuleError(
                    f"{row}.radius_km",
                    f"must be greater than {_fmt(prev.radius_km)} ({where}steps[{i - 1}])",
                )
        prev = step
    top = rule_set.max_radius_km
    if not (math.isfinite(top) and top > 0):
        raise RuleError(f"{where}max_radius_km", f"must be greater than 0, got {top}")
    if prev is not None and top <= prev.radius_km:
        raise RuleError(
            f"{where}max_radius_km",
            f"must be greater than {_fmt(prev.radius_km)} "
            f"({where}steps[{len(rule_set.steps) - 1}])",
        )
    if top > ceiling_km:
        raise RuleError(f"{where}max_radius_km", f"must be at most {_fmt(ceiling_km)} (ceiling)")
    return rule_set


@dataclass(frozen=True)
class RegionOverride:
    """A region (e.g. a dense city) with its own schedule, chosen by the last-seen point."""

    name: str
    vertices: tuple[tuple[float, float], ...]
    rules: RuleSet
    area: areas.Area = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "area", areas.Area.from_vertices(self.vertices))


def region_override(
    name: str,
    vertices: Sequence[tuple[float, float]],
    rules: RuleSet,
    index: int = 0,
    ceiling_km: float = DEFAULT_CEILING_KM,
) -> RegionOverride:
    """Build and validate a region override; errors name ``regions[index]``."""
    where = f"regions[{index}]."
    validate(rules, ceiling_km, where)
    try:
        verts = tuple((float(lat), float(lon)) for lat, lon in vertices)
        return RegionOverride(name, verts, rules)
    except areas.AreaError as exc:
        raise RuleError(f"{where}{exc.field}", str(exc).split(": ", 1)[1]) from exc


def rules_for(
    default: RuleSet, regions: Sequence[RegionOverride], lat: float, lon: float
) -> RuleSet:
    """The rule set of the first region containing (lat, lon), else ``default``."""
    for region in regions:
        if region.area.contains(lat, lon):
            return region.rules
    return default


@dataclass(frozen=True)
class CaseOverride:
    """A supervisor's adjustment for one case."""

    start_radius_km: float | None = None  # a smaller first wave
    cap_km: float | None = None  # never grow beyond this
    area: areas.Area | None = None  # a manual area replaces the circles: one wave, no growth

    def __post_init__(self) -> None:
        for name in ("start_radius_km", "cap_km"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise RuleError(name, f"must be greater than 0, got {value}")


@dataclass(frozen=True)
class Wave:
    """One widening of the alert: when it starts and what it covers."""

    index: int
    starts_at: datetime
    radius_km: float | None
    area: areas.Area


def waves(
    rule_set: RuleSet,
    last_seen_at: datetime,
    approved_at: datetime,
    lat: float,
    lon: float,
    regions: Sequence[RegionOverride] = (),
    case_override: CaseOverride | None = None,
) -> list[Wave]:
    """The full wave schedule from approval onwards (wave 0 at ``approved_at``)."""
    if approved_at < last_seen_at:
        raise RuleError("approved_at", "must not be earlier than last_seen_at")
    override = case_override or CaseOverride()
    if override.area is not None:
        return [Wave(0, approved_at, None, override.area)]
    rules = rules_for(rule_set, regions, lat, lon)
    cap = override.cap_km if override.cap_km is not None else math.inf

    def radius(elapsed: timedelta) -> float:
        return min(rules.radius_at(elapsed), cap)

    first = radius(approved_at - last_seen_at)
    if override.start_radius_km is not None:
        first = min(first, override.start_radius_km)
    out = [Wave(0, approved_at, first, areas.Area.circle(lat, lon, first))]
    for step in rules.steps:
        starts = last_seen_at + step.up_to
        if starts <= approved_at:
            continue
        # Just after the boundary the next radius applies.
        r = radius(step.up_to + timedelta(microseconds=1))
        if r > (out[-1].radius_km or 0.0):
            out.append(Wave(len(out), starts, r, areas.Area.circle(lat, lon, r)))
    return out


def due_waves(schedule: Sequence[Wave], now: datetime, sent_through: int = -1) -> list[Wave]:
    """Waves that have started by ``now`` and come after index ``sent_through``."""
    return [w for w in schedule if w.starts_at <= now and w.index > sent_through]
