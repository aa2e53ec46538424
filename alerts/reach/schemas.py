"""The reach report and partner reach reports over HTTP (numbers and ids only: no personal data)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from alerts.cases.schemas import PastTime
from alerts.tips.schemas import MESSAGE, MESSAGE_ID

SECONDS_TO = (
    "Seconds from the message's creation (the instant the wave engine started the wave) to the "
    "second in which the provider acceptances recorded by the ledger reached {p} % of the "
    "devices targeted so far (APNs, FCM and SMS targets; partner endpoints, FCM topics and "
    "carrier broadcasts are not devices). Whole seconds, from the ledger's per-second histogram "
    "of `sent`. Null when not reached yet, or when the histogram has expired (8 days)"
)


class PartnerReachCreate(BaseModel):
    """A partner's own count of what one alert message reached in its app."""

    model_config = ConfigDict(extra="forbid")

    impressions: int = Field(
        ge=0,
        le=10**10,
        description="Times the alert was shown to users (the partner's count)",
        examples=[5400],
    )
    opened: int | None = Field(
        default=None,
        ge=0,
        le=10**10,
        description="Of those, how many users opened it; null or omitted if not counted",
        examples=[1200],
    )
    reported_at: PastTime = Field(
        description="When the partner counted: ISO 8601 with a UTC offset, not in the future",
        examples=["2025-06-01T12:00:00+08:00"],
    )

    @field_validator("opened")
    @classmethod
    def _opened_within(cls, opened: int | None, info: ValidationInfo) -> int | None:
        impressions = info.data.get("impressions")
        if opened is not None and impressions is not None and opened > impressions:
            raise ValueError("more than impressions")
        return opened


class PartnerReachRead(BaseModel):
    """A partner's latest reach report for one message."""

    model_config = ConfigDict(from_attributes=True)

    message_id: str = Field(description=MESSAGE_ID, examples=[MESSAGE])
    partner_id: int = Field(description="The reporting partner", examples=[3])
    impressions: int = Field(
        description="Times shown to users, as the partner reported", examples=[5400]
    )
    opened: int | None = Field(
        description="Opened by users, as the partner reported (or null)", examples=[1200]
    )
    reported_at: datetime = Field(
        description="When the partner counted", examples=["2025-06-01T12:00:00+08:00"]
    )
    received_at: datetime = Field(
        description="When Reunite stored this report", examples=["2025-06-01T04:00:02Z"]
    )


class ReachCount(BaseModel):
    """Ledger counts of one message on one channel for one partner."""

    channel: str = Field(
        description="apns, fcm, sms (devices); webhook (partner endpoints); fcm_topic (geo-cell "
        "topics); sms_broadcast (carrier broadcast languages)",
        examples=["apns"],
    )
    partner_id: int | None = Field(
        description="The partner the targets belong to; null: none", examples=[3]
    )
    targeted: int = Field(description="Targets chosen (each counted once)", examples=[1520])
    sent: int = Field(description="Accepted by the provider", examples=[1498])
    delivered: int = Field(
        description="Of those sent, confirmed by a carrier receipt (SMS only)", examples=[0]
    )
    failed: int = Field(
        description="Refused for good: failed, dead token or dead-lettered", examples=[4]
    )


class WaveReach(BaseModel):
    """One message of the case (an alert wave, an update or the closing notice)."""

    message_id: str = Field(
        description="The message id `<case-id>:<kind>:<wave>:<n>`", examples=[MESSAGE]
    )
    kind: str = Field(description="alert, update, found, cancelled, ...", examples=["alert"])
    wave: int = Field(description="The wave the message belongs to, numbered from 1", examples=[1])
    started_at: datetime = Field(
        description="When the message was created (the wave's start)",
        examples=["2025-06-01T03:10:00Z"],
    )
    devices_targeted: int = Field(
        description="Devices targeted (APNs, FCM and SMS)", examples=[15400]
    )
    devices_sent: int = Field(description="Of those, accepted by the provider", examples=[15212])
    devices_delivered: int = Field(
        description="Of those, confirmed by a carrier receipt", examples=[310]
    )
    seconds_to_50: int | None = Field(description=SECONDS_TO.format(p=50), examples=[41])
    seconds_to_90: int | None = Field(description=SECONDS_TO.format(p=90), examples=[96])
    seconds_to_99: int | None = Field(description=SECONDS_TO.format(p=99), examples=[180])
    counts: list[ReachCount] = Field(description="Per channel and partner")
    partner_reports: list[PartnerReachRead] = Field(
        description="What partners reported this message reached in their apps (latest each)",
    )


class CellReach(BaseModel):
    """Devices targeted in one H3 resolution-5 cell (about 252 km²), over every wave."""

    cell: str = Field(
        description="H3 cell id, resolution 5 (hex string)", examples=["85411c2ffffffff"]
    )
    targeted: int = Field(
        description="Devices targeted in the cell, at least the k floor", examples=[1520]
    )
    sent: int | None = Field(
        description="Of those, accepted by a provider; null when below the k floor (but not 0)",
        examples=[1498],
    )


class TimelinePoint(BaseModel):
    """Running totals over every message of the case at one second."""

    at: datetime = Field(description="The second (UTC)", examples=["2025-06-01T03:10:41Z"])
    sent: int = Field(
        description="Devices sent so far (every message of the case)", examples=[1498]
    )
    delivered: int = Field(description="Devices delivered so far (carrier receipts)", examples=[0])


class ReachReport(BaseModel):
    """A case's reach, computed from the delivery ledger (ids and numbers only)."""

    case_id: str = Field(description="The case", examples=["3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11"])
    generated_at: datetime = Field(
        description="When the report was computed", examples=["2025-06-01T05:00:00Z"]
    )
    k_floor: int = Field(
        description="Cells with fewer targeted devices than this are left out of `cells` "
        "(REUNITE_REACH_K_FLOOR)",
        examples=[10],
    )
    waves: list[WaveReach] = Field(description="Per message, oldest first")
    cells: list[CellReach] = Field(description="Devices per H3 resolution-5 cell, at the floor")
    cells_suppressed: int = Field(
        description="How many cells were left out (below the floor)", examples=[3]
    )
    timeline: list[TimelinePoint] = Field(description="Sent and delivered over time")
