"""Schemas for the partner device API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from geo.devices.service import Platform

ExternalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:\-]{1,128}$")]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]

# Shared wording: the same field means the same thing in every schema below.
EXTERNAL_ID = "The partner's own opaque device id (1-128 of A-Z a-z 0-9 . _ : -); never a user id"
PLATFORM = "How the device is reached: apns (iOS push), fcm (Android push) or sms"
ADDRESS = (
    "The APNs or FCM push token, or the E.164 phone number for sms (8-4096 characters); "
    "stored encrypted and never returned"
)
LOCALE = (
    "The language its owner reads, a BCP 47 tag such as zh-CN or en: texts go out in it when "
    "the case has it, otherwise in the case's first alert language"
)
LAT = "Latitude in degrees (WGS 84), -90 to 90; snapped to a ~66 m cell, never stored raw"
LON = "Longitude in degrees (WGS 84), -180 to 180; snapped like lat"
AT = (
    "When the device was at this place: ISO 8601 with a UTC offset; omitted: now. A location "
    "older than REUNITE_LOCATION_STALENESS_HOURS (24 h) is not targeted"
)
ROW_AT = AT + "; a row more than 5 min in the future or older than that is rejected"
TOKEN = "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad"


class DeviceUpsert(BaseModel):
    """Register or refresh one device. Its location is snapped to a ~66 m cell; raw coordinates
    are never stored."""

    model_config = ConfigDict(extra="forbid")

    platform: Platform = Field(description=PLATFORM, examples=["apns"])
    # APNs/FCM token or E.164 phone number; stored encrypted and never echoed back.
    address: Annotated[str, StringConstraints(min_length=8, max_length=4096)] = Field(
        description=ADDRESS, examples=[TOKEN]
    )
    locale: Locale = Field(default="zh-CN", description=LOCALE, examples=["zh-CN"])
    opted_in: bool = Field(
        default=True,
        description="Whether the owner wants alerts; false also forgets its location",
        examples=[True],
    )
    # A handset of the partner's own test fleet: drills and system tests reach only these.
    test_device: bool = Field(
        default=False,
        description="A handset of the partner's own test fleet: drills and system tests "
        "reach only these",
        examples=[False],
    )
    lat: float | None = Field(
        default=None,
        ge=-90,
        le=90,
        allow_inf_nan=False,
        description=LAT + "; give lat and lon together, or neither",
        examples=[23.1291],
    )
    lon: float | None = Field(
        default=None,
        ge=-180,
        le=180,
        allow_inf_nan=False,
        description=LON,
        examples=[113.2644],
    )
    at: AwareDatetime | None = Field(
        default=None, description=AT, examples=["2025-06-01T09:30:00+08:00"]
    )


class LocationRow(BaseModel):
    """One row of a bulk upload: a location for a device, optionally registering it."""

    model_config = ConfigDict(extra="forbid")

    id: ExternalId = Field(
        description=EXTERNAL_ID + "; an unknown id needs platform and address to register it",
        examples=["d-0001"],
    )
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description=LAT, examples=[23.1291])
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description=LON, examples=[113.2644])
    at: AwareDatetime | None = Field(
        default=None, description=ROW_AT, examples=["2025-06-01T09:30:00+08:00"]
    )
    platform: Platform | None = Field(
        default=None,
        description=PLATFORM + "; with address, registers or refreshes the device",
        examples=["apns"],
    )
    address: Annotated[str, StringConstraints(min_length=8, max_length=4096)] | None = Field(
        default=None, description=ADDRESS + "; goes with platform", examples=[TOKEN]
    )
    locale: Locale | None = Field(
        default=None,
        description=LOCALE + "; used when the row registers the device (default zh-CN)",
        examples=["zh-CN"],
    )
    opted_in: bool | None = Field(
        default=None,
        description="false: the owner no longer wants alerts (the location is dropped); "
        "omitted: unchanged, or true when the row registers the device",
        examples=[True],
    )


class LocationBatch(BaseModel):
    """A bulk upload wrapped in an object (documents the body; geo.devices.ingest reads it)."""

    devices: list[LocationRow] = Field(
        description="The rows, as in the plain array form; other keys are ignored",
        examples=[[{"id": "d-0001", "lat": 23.1291, "lon": 113.2644}]],
    )


class DeviceRead(BaseModel):
    """A registered device as the partner sees it (its address and location never)."""

    external_id: str = Field(description=EXTERNAL_ID, examples=["d-0001"])
    platform: Platform = Field(description=PLATFORM, examples=["apns"])
    locale: str = Field(description=LOCALE, examples=["zh-CN"])
    opted_in: bool = Field(description="Whether the owner wants alerts", examples=[True])
    test_device: bool = Field(
        description="A handset of the partner's test fleet (drills and system tests reach "
        "only these)",
        examples=[False],
    )
    active: bool = Field(
        description="false once a provider said the token or number no longer exists "
        "(registering it again reactivates it)",
        examples=[True],
    )
    located: bool = Field(
        description="Whether a location is held for it (one within the staleness window is "
        "targeted)",
        examples=[True],
    )
    last_contact_at: datetime = Field(
        description="Last registration or location upload (UTC, hourly granularity); devices "
        "silent for REUNITE_DEVICE_RETENTION_DAYS (30) are deleted",
        examples=["2025-06-01T01:30:00Z"],
    )


class RowError(BaseModel):
    """One row of a bulk upload that was not applied, and why."""

    index: int = Field(
        description="The row's 0-based position in the upload (for NDJSON, among the "
        "non-blank lines)",
        examples=[3],
    )
    field: str = Field(
        description="The row's field at fault (`id`, `lat`, `at`, ...) or `row` for a row "
        "that is not an object or an unreadable NDJSON line",
        examples=["lat"],
    )
    message: str = Field(
        description="Why, in English (an unreadable NDJSON line says `line N: ...`)",
        examples=["Input should be less than or equal to 90"],
    )


class BulkResult(BaseModel):
    """What a bulk upload did: every good row is applied, every bad one listed."""

    received: int = Field(description="Rows in the upload", examples=[1000])
    applied: int = Field(description="Rows whose location was written to the index", examples=[997])
    registered: int = Field(
        description="Rows that also registered or refreshed a device (platform and address given)",
        examples=[12],
    )
    rejected: list[RowError] = Field(
        description="The rows not applied, by index, in order",
        examples=[
            [{"index": 3, "field": "lat", "message": "Input should be less than or equal to 90"}]
        ],
    )
