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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepIn(Strict):
    up_to_minutes: int = Field(description="The radius applies while time since loss <= this")
    radius_km: float = Field(allow_inf_nan=False)


class RegionIn(Strict):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(clean_line),
    ]
    vertices: list[tuple[float, float]] = Field(
        min_length=3, max_length=2000, description="[lat, lon] pairs"
    )
    steps: list[StepIn] = Field(max_length=24)
    max_radius_km: float = Field(allow_inf_nan=False)


class RuleSetCreate(Strict):
    steps: list[StepIn] = Field(max_length=24)
    max_radius_km: float = Field(allow_inf_nan=False)
    regions: list[RegionIn] = Field(default_factory=list, max_length=100)
    note: Annotated[str, StringConstraints(max_length=500), AfterValidator(clean_text)] = ""


class RuleSetRead(BaseModel):
    version: int
    steps: list[StepIn]
    max_radius_km: float
    regions: list[RegionIn]
    note: str
    created_by: str
    created_at: datetime | None


class PreviewRequest(Strict):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    last_seen_at: AwareDatetime
    approved_at: AwareDatetime | None = None


class WavePreview(BaseModel):
    index: int
    starts_at: datetime
    radius_km: float | None
    cap_circle: str | None
    cap_polygon: str
    devices_new: int


class PreviewRead(BaseModel):
    rule_version: int
    waves: list[WavePreview]
    devices_total: int
