"""Schemas for the partner device API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from geo.devices.service import Platform

ExternalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:\-]{1,128}$")]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]


class DeviceUpsert(BaseModel):
    """Register or refresh one device. Its location is snapped to a ~66 m cell; raw coordinates
    are never stored."""

    model_config = ConfigDict(extra="forbid")

    platform: Platform
    # APNs/FCM token or E.164 phone number; stored encrypted and never echoed back.
    address: Annotated[str, StringConstraints(min_length=8, max_length=4096)]
    locale: Locale = "zh-CN"
    opted_in: bool = True
    # A handset of the partner's own test fleet: drills and system tests reach only these.
    test_device: bool = False
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    at: AwareDatetime | None = None


class LocationRow(BaseModel):
    """One row of a bulk upload: a location for a device, optionally registering it."""

    model_config = ConfigDict(extra="forbid")

    id: ExternalId
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    at: AwareDatetime | None = None
    platform: Platform | None = None
    address: Annotated[str, StringConstraints(min_length=8, max_length=4096)] | None = None
    locale: Locale | None = None
    opted_in: bool | None = None


class DeviceRead(BaseModel):
    external_id: str
    platform: Platform
    locale: str
    opted_in: bool
    test_device: bool
    active: bool
    located: bool
    last_contact_at: datetime


class RowError(BaseModel):
    index: int
    field: str
    message: str


class BulkResult(BaseModel):
    received: int
    applied: int
    registered: int
    rejected: list[RowError]
