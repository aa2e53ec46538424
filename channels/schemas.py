"""API shapes of the delivery ledger."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

CHANNEL = (
    "apns, fcm, sms, fcm_topic (FCM cell topics), sms_broadcast (an SMS gateway's area "
    "broadcast) or webhook"
)
MESSAGE_ID = "The message: `<case-id>:<kind>:<wave>:<n>`, the same on every retry"
MESSAGE = "3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11:alert:0:1"
OUTCOME = (
    "ok; retry (timeout, unreachable, 429 or 5xx: tried again with backoff); dead_target "
    "(410: the endpoint is disabled); failed (another 4xx, a non-public address or an event "
    "too large: not retried)"
)


class ChannelCount(BaseModel):
    """Delivery counts of one channel (and partner): each target counts once per state."""

    channel: str = Field(description=CHANNEL, examples=["apns"])
    partner_id: int | None = Field(
        description="The partner whose devices or endpoints these are; null for topics and "
        "broadcasts",
        examples=[2],
    )
    targeted: int = Field(
        default=0, description="Targets chosen (devices, endpoints, topics)", examples=[18250]
    )
    sent: int = Field(
        default=0, description="Accepted by the provider or endpoint", examples=[18102]
    )
    failed: int = Field(default=0, description="Refused for good, not retried", examples=[3])
    retrying: int = Field(default=0, description="Waiting for a retry now", examples=[40])
    dead: int = Field(
        default=0,
        description="Devices whose token or number no longer exists (deactivated)",
        examples=[105],
    )
    dead_lettered: int = Field(
        default=0,
        description="Still failing at the retry horizon: kept for `reunite dlq replay`",
        examples=[0],
    )
    withdrawn: int = Field(
        default=0, description="Not sent because the case closed first", examples=[0]
    )
    delivered: int = Field(
        default=0,
        description="Of `sent`, those a carrier's delivery receipt confirmed on the handset "
        "(every part of an SMS); counted only where receipts exist (SMS)",
        examples=[17890],
    )


class MessageDeliveries(BaseModel):
    """One message of the case (a wave's alert, an update or a closing notice) and its counts."""

    message_id: str = Field(description=MESSAGE_ID, examples=[MESSAGE])
    kind: str = Field(
        description="alert, update, resolved, cancelled or expired", examples=["alert"]
    )
    wave: int = Field(description="The wave it was sent for (0 first)", examples=[0])
    created_at: datetime = Field(
        description="When it was made (UTC)", examples=["2025-06-01T00:52:01Z"]
    )
    counts: list[ChannelCount] = Field(description="Counts per channel and partner")
    # Channels whose targets are still open past their deadline: stuck, not in progress (the
    # reconciler queues them again), and how many targets it has queued again so far.
    stuck_channels: list[str] = Field(
        default=[],
        description="Channels with targets still open past their deadline: stuck, not in "
        "progress (the reconciler queues them again)",
        examples=[["sms"]],
    )
    requeued: int = Field(
        default=0,
        description="Targets the reconciler has queued again so far",
        examples=[0],
    )


class DeadLetterCount(BaseModel):
    """Dead-lettered targets not yet replayed, per channel and reason."""

    channel: str = Field(description=CHANNEL, examples=["sms"])
    reason: str = Field(
        description="The last failure reason the provider gave", examples=["http_503"]
    )
    targets: int = Field(description="How many targets", examples=[12])


class WebhookAttemptRead(BaseModel):
    """One POST of an event to a partner endpoint."""

    model_config = ConfigDict(from_attributes=True)

    message_id: str = Field(description=MESSAGE_ID, examples=[MESSAGE])
    partner_id: int = Field(description="The partner", examples=[2])
    endpoint_id: int = Field(description="Its endpoint", examples=[7])
    attempt: int = Field(description="1 for the first try, then 2, 3, ...", examples=[1])
    outcome: str = Field(description=OUTCOME, examples=["ok"])
    reason: str = Field(
        description="What happened, e.g. ok, http_503, timeout, endpoint_unreachable",
        examples=["ok"],
    )
    status: int | None = Field(
        description="The endpoint's HTTP status; null when there was no answer", examples=[204]
    )
    duration_ms: int = Field(description="How long the POST took, in ms", examples=[84])
    at: datetime = Field(description="When it was made (UTC)", examples=["2025-06-01T00:52:03Z"])


class CaseDeliveries(BaseModel):
    """The delivery ledger of one case."""

    case_id: str = Field(
        description="The case's id (a UUID)", examples=["3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11"]
    )
    totals: list[ChannelCount] = Field(
        description="Counts per channel and partner over all the case's messages"
    )
    messages: list[MessageDeliveries] = Field(description="Each message, oldest first")
    webhook_attempts: list[WebhookAttemptRead] = Field(
        description="The latest 200 webhook attempts, newest first"
    )
    dead_letters: list[DeadLetterCount] = Field(
        default=[], description="Dead-lettered targets not yet replayed"
    )


class SmsReportRecorded(BaseModel):
    """A gateway's delivery report was taken (recorded once, however often it is sent)."""

    id: str = Field(
        description="The gateway's id of the message the report is about",
        examples=["gw-7f3a9c21"],
    )
    delivered: bool = Field(
        description="Whether the report says the handset received it", examples=[True]
    )
