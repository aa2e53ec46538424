"""API shapes of the delivery ledger."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ChannelCount(BaseModel):
    channel: str
    partner_id: int | None
    targeted: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    dead: int = 0
    dead_lettered: int = 0
    withdrawn: int = 0
    # Of `sent`, those a carrier's delivery receipt confirmed on the handset (SMS only).
    delivered: int = 0


class MessageDeliveries(BaseModel):
    message_id: str
    kind: str
    wave: int
    created_at: datetime
    counts: list[ChannelCount]
    # Channels whose targets are still open past their deadline: stuck, not in progress (the
    # reconciler queues them again), and how many targets it has queued again so far.
    stuck_channels: list[str] = []
    requeued: int = 0


class DeadLetterCount(BaseModel):
    """Dead-lettered targets not yet replayed, per channel and reason."""

    channel: str
    reason: str
    targets: int


class WebhookAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    message_id: str
    partner_id: int
    endpoint_id: int
    attempt: int
    outcome: str
    reason: str
    status: int | None
    duration_ms: int
    at: datetime


class CaseDeliveries(BaseModel):
    case_id: str
    totals: list[ChannelCount]
    messages: list[MessageDeliveries]
    webhook_attempts: list[WebhookAttemptRead]
    dead_letters: list[DeadLetterCount] = []


class SmsReportRecorded(BaseModel):
    """A gateway's delivery report was taken (recorded once, however often it is sent)."""

    id: str
    delivered: bool
