"""Schemas for sightings, per-case overrides and the wave list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alerts.cases.schemas import CASE_ID, LAT, LON, Lines, PastTime, Text300, Text1000

VERTICES = (
    "A drawn area: [lat, lon] pairs in degrees (WGS 84), 3-2000 points, every one within the "
    "rule set's ceiling (max_radius_km) of the last-seen place; it replaces the growing "
    "circles with one wave"
)


class SightingCreate(BaseModel):
    """A new last-seen place and time for an active case: the waves restart from it."""

    model_config = ConfigDict(extra="forbid")

    at: PastTime = Field(
        description="When the child was seen: ISO 8601 with a UTC offset, not in the future "
        "and not earlier than the case's last-seen time",
        examples=["2025-06-01T11:05:00+08:00"],
    )
    lat: float = Field(
        ge=-90,
        le=90,
        allow_inf_nan=False,
        description=LAT + "; the new centre. Further than REUNITE_LIVE_CHANGE_MAX_KM (50 km) "
        "from the current one, it waits for a second supervisor",
        examples=[23.55],
    )
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description=LON, examples=[113.59])
    address: Text300 | None = Field(
        default=None,
        description="The place in words (up to 300 characters); replaces the last-seen place "
        "in public texts. Null or omitted: the address stays",
        examples=["Conghua bus station, Guangzhou"],
    )
    note: Text1000 | None = Field(
        default=None,
        description="What was seen, by whom (up to 1000 characters); for the police record",
        examples=["Seen by a ticket clerk boarding a bus towards Shaoguan"],
    )


class SightingRead(BaseModel):
    """A recorded sighting."""

    id: int = Field(description="The sighting's id", examples=[4])
    case_id: str = Field(description=CASE_ID, examples=["3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11"])
    at: datetime = Field(
        description="When the child was seen (UTC)", examples=["2025-06-01T03:05:00Z"]
    )
    lat: float = Field(description=LAT, examples=[23.55])
    lon: float = Field(description=LON, examples=[113.59])
    created_at: datetime = Field(
        description="When it was recorded (UTC)", examples=["2025-06-01T03:10:00Z"]
    )


class GeoOverride(BaseModel):
    """A supervisor's override of one case's area; it replaces any earlier override whole."""

    model_config = ConfigDict(extra="forbid")

    start_radius_km: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="A smaller first wave: wave 0 reaches at most this many km (> 0); null: "
        "the rule set's",
        examples=[20],
    )
    cap_km: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="The alert never grows beyond this many km (> 0); null: no cap",
        examples=[150],
    )
    vertices: list[tuple[float, float]] | None = Field(
        default=None,
        min_length=3,
        max_length=2000,
        description=VERTICES + "; null: circles",
        examples=[[[23.0, 113.1], [23.0, 113.5], [23.3, 113.5], [23.3, 113.1]]],
    )
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Lines
    ] = Field(
        description="Why (1-500 characters), for the audit log",
        examples=["The river to the east is impassable; keep the alert on this side"],
    )


class WaveRead(BaseModel):
    """One widening of a case's alert, planned or sent."""

    id: int = Field(description="The wave's id", examples=[31])
    epoch: int = Field(
        description="The schedule it belongs to: 0 from approval, one more for each sighting "
        "or override that re-planned the waves",
        examples=[0],
    )
    index: int = Field(description="Its place in the epoch's schedule, 0 first", examples=[1])
    starts_at: datetime = Field(
        description="When it is due (UTC): when the time since the loss passes the next step "
        "of the radius rules",
        examples=["2025-06-01T02:15:00Z"],
    )
    radius_km: float | None = Field(
        description="Its radius around the centre in km; null for a drawn area", examples=[200]
    )
    center: tuple[float, float] = Field(
        description="[lat, lon] of the centre in degrees (WGS 84): the last-seen place when "
        "it was planned",
        examples=[[23.1291, 113.2644]],
    )
    status: str = Field(
        description="scheduled, queued, targeting (finding devices), started (all shards "
        "queued), or cancelled before it started (the case closed, or a sighting or override "
        "re-planned the waves)",
        examples=["started"],
    )
    started_at: datetime | None = Field(
        description="When targeting began (UTC); null before", examples=["2025-06-01T02:15:01Z"]
    )
    rule_version: int | None = Field(
        description="The radius rule set version it was planned with (0: the built-in default)",
        examples=[2],
    )
    shards: int = Field(
        description="Targeting shards planned for it (0 until targeting begins)", examples=[24]
    )
    targeted: int = Field(description="Devices targeted so far", examples=[18250])
