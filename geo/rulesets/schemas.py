"""Schemas for radius rule sets and the reach preview."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from ops.text import clean_line, clean_text

CEILING = "at most REUNITE_RADIUS_CEILING_KM (1000)"
STEPS = (
    "Up to 24 steps, each later and wider than the one before; a case gets a new wave each "
    "time the time since the loss passes a step"
)
MAX_RADIUS = "The radius in km once the last step has passed (wider than it, " + CEILING + ")"
LATE = (
    "Whether a device that reports a location inside a live wave's area after the wave "
    "started, and was not alerted for the case yet, gets the alert then (once). On by default"
)
LAT = "Latitude in degrees (WGS 84), -90 to 90"
LON = "Longitude in degrees (WGS 84), -180 to 180"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepIn(Strict):
    """One step of the schedule: a radius while the time since the loss is within a bound."""

    up_to_minutes: int = Field(
        description="The radius applies while the time since the loss is at most this many "
        "minutes (> 0)",
        examples=[60],
    )
    radius_km: float = Field(
        allow_inf_nan=False,
        description="The alert radius in km around the last-seen place (> 0, " + CEILING + ")",
        examples=[100],
    )


class RegionIn(Strict):
    """A region (e.g. a dense city) with its own schedule, chosen by the last-seen place."""

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(clean_line),
    ] = Field(description="A name for it (1-100 characters)", examples=["Guangzhou urban core"])
    vertices: list[tuple[float, float]] = Field(
        min_length=3,
        max_length=2000,
        description="Its outline: [lat, lon] pairs in degrees (WGS 84), 3-2000 points. A case "
        "last seen inside uses this schedule (the first region listed that contains it)",
        examples=[[[22.9, 113.1], [22.9, 113.6], [23.4, 113.6], [23.4, 113.1]]],
    )
    steps: list[StepIn] = Field(max_length=24, description=STEPS)
    max_radius_km: float = Field(allow_inf_nan=False, description=MAX_RADIUS, examples=[300])


class RuleSetCreate(Strict):
    """A new version of the radius rules; it applies to waves planned from now on."""

    steps: list[StepIn] = Field(max_length=24, description=STEPS)
    max_radius_km: float = Field(allow_inf_nan=False, description=MAX_RADIUS, examples=[500])
    regions: list[RegionIn] = Field(
        default_factory=list,
        max_length=100,
        description="Up to 100 regions with their own schedule; empty: one schedule everywhere",
    )
    alert_late_arrivals: bool = Field(default=True, description=LATE, examples=[True])
    note: Annotated[str, StringConstraints(max_length=500), AfterValidator(clean_text)] = Field(
        default="",
        description="Why this version (up to 500 characters), for the audit log",
        examples=["Smaller first wave in the Pearl River Delta"],
    )


class RuleSetRead(BaseModel):
    """A version of the radius rules."""

    version: int = Field(
        description="1, 2, ... in order stored; 0 is the built-in default (the model system's "
        "schedule: 100 km to 1 h, 200 km to 2 h, 300 km to 3 h, then 500 km)",
        examples=[2],
    )
    steps: list[StepIn] = Field(description=STEPS)
    max_radius_km: float = Field(description=MAX_RADIUS, examples=[500])
    regions: list[RegionIn] = Field(description="Regions with their own schedule")
    alert_late_arrivals: bool = Field(description=LATE, examples=[True])
    note: str = Field(
        description="Why this version was stored",
        examples=["Smaller first wave in the Pearl River Delta"],
    )
    created_by: str = Field(
        description="Who stored it, as `user:<id>`; `system` for the built-in default",
        examples=["user:4"],
    )
    created_at: datetime | None = Field(
        description="When it was stored (UTC); null for the built-in default",
        examples=["2025-05-20T06:00:00Z"],
    )


class PreviewRequest(Strict):
    """A case to preview: where and when the child was lost, and when it would be approved."""

    lat: float = Field(
        ge=-90,
        le=90,
        allow_inf_nan=False,
        description=LAT + ": where the child was last seen",
        examples=[23.1291],
    )
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description=LON, examples=[113.2644])
    last_seen_at: AwareDatetime = Field(
        description="When the child was last seen: ISO 8601 with a UTC offset",
        examples=["2025-06-01T08:15:00+08:00"],
    )
    approved_at: AwareDatetime | None = Field(
        default=None,
        description="When the case would be approved (ISO 8601 with a UTC offset, not before "
        "last_seen_at); omitted: now",
        examples=["2025-06-01T09:45:00+08:00"],
    )


class WavePreview(BaseModel):
    """One wave a case would get."""

    index: int = Field(description="Its place in the schedule, 0 first (at approval)", examples=[0])
    starts_at: datetime = Field(
        description="When it would start (UTC)", examples=["2025-06-01T01:45:00Z"]
    )
    radius_km: float | None = Field(
        description="Its radius in km around the last-seen place; null for a drawn area",
        examples=[200],
    )
    cap_circle: str | None = Field(
        description="The area as a CAP 1.2 circle, `lat,lon radius_km`; null for a drawn area",
        examples=["23.1291,113.2644 200"],
    )
    cap_polygon: str = Field(
        description="The area as a CAP 1.2 polygon: space-separated `lat,lon` pairs, the "
        "first repeated last",
        examples=[
            "22.2291,113.2644 23.1291,114.2418 24.0291,113.2644 23.1291,112.287 22.2291,113.2644"
        ],
    )
    devices_new: int = Field(
        description="Registered devices with a fresh location in this wave's area and in no "
        "earlier wave's",
        examples=[1250000],
    )


class PreviewRead(BaseModel):
    """The waves a case would get under the rules in force, and the devices they reach."""

    rule_version: int = Field(
        description="The rule set version used (0: the built-in default)", examples=[2]
    )
    waves: list[WavePreview] = Field(description="The waves, in order")
    devices_total: int = Field(
        description="Distinct devices all the waves reach together", examples=[3400000]
    )
