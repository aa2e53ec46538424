"""Schemas for sightings, per-case overrides and the wave list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alerts.cases.schemas import Lines, PastTime, Text300, Text1000


class SightingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: PastTime
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    address: Text300 | None = None
    note: Text1000 | None = None


class SightingRead(BaseModel):
    id: int
    case_id: str
    at: datetime
    lat: float
    lon: float
    created_at: datetime


class GeoOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_radius_km: float | None = Field(default=None, allow_inf_nan=False)
    cap_km: float | None = Field(default=None, allow_inf_nan=False)
    vertices: list[tuple[float, float]] | None = Field(
        default=None, min_length=3, max_length=2000, description="[lat, lon] pairs"
    )
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Lines
    ]


class WaveRead(BaseModel):
    id: int
    epoch: int
    index: int
    starts_at: datetime
    radius_km: float | None
    center: tuple[float, float]
    status: str
    started_at: datetime | None
    rule_version: int | None
    shards: int
    targeted: int
