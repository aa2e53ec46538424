"""Channel settings: one typed block per provider plus the operator knobs of the fan-out.

Mounted on the one Settings object as `settings.channels`; environment variables use the
nested delimiter, e.g. REUNITE_CHANNELS__APNS__BASE_URL or REUNITE_CHANNELS__RETRY_HORIZON_S
(or a whole block as JSON: REUNITE_CHANNELS__APNS='{"topic": ...}').
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from channels.apns import ApnsSettings
from channels.fcm import FcmSettings
from channels.sms_http import SmsHttpSettings
from channels.sms_smpp import SmppSettings
from channels.webhook import WebhookSettings


class ChannelSettings(BaseModel):
    """Provider blocks (None: channel not configured) and delivery knobs."""

    apns: ApnsSettings | None = None
    fcm: FcmSettings | None = None
    smpp: SmppSettings | None = None
    sms_http: SmsHttpSettings | None = None
    sms_provider: Literal["smpp", "http"] = "smpp"
    webhook: WebhookSettings = WebhookSettings()

    deep_link_base: str = "https://reunite.example/c/"
    message_ttl_s: int = Field(default=24 * 3600, ge=60)

    # Batches: devices per channel task (a killed worker re-sends at most its in-flight batch).
    apns_batch: int = Field(default=500, ge=1, le=10_000)
    fcm_batch: int = Field(default=500, ge=1, le=10_000)
    sms_batch: int = Field(default=50, ge=1, le=1_000)
    # Concurrent sends inside one batch task (HTTP/2 streams in flight).
    apns_concurrency: int = Field(default=200, ge=1, le=5_000)
    fcm_concurrency: int = Field(default=100, ge=1, le=5_000)
    sms_concurrency: int = Field(default=10, ge=1, le=500)

    # Token buckets shared by every worker (per provider; SMS per bind).
    apns_rate_per_s: float = Field(default=50_000, gt=0)
    fcm_rate_per_s: float = Field(default=10_000, gt=0)  # the 600k/min project quota
    sms_rate_per_s: float = Field(default=20, gt=0)  # per bind; carriers cap 10-30/s
    # Above this many devices in one FCM wave, send geo-cell topic messages instead.
    fcm_topic_threshold: int = Field(default=200_000, ge=0)
    max_sms_parts: int = Field(default=4, ge=1, le=20)
    # Carriers that target by cell themselves get one area broadcast per wave (sms_http block).
    sms_area_broadcast: bool = False

    # Retries: exponential backoff with full jitter, never earlier than Retry-After.
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_delay_s: float = Field(default=300.0, gt=0)
    retry_horizon_s: float = Field(default=6 * 3600.0, gt=0)
    # A task that cannot get a partner's concurrency budget reschedules itself after this.
    budget_wait_s: float = Field(default=0.25, gt=0)
    budget_lease_s: float = Field(default=60.0, gt=0)

    # Circuit breaker per endpoint: open after N consecutive failures, probe after open_s.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)

    # Celery+Redis redelivers an unacknowledged task after this; see docs/PERFORMANCE.md.
    visibility_timeout_s: int = Field(default=600, ge=1)

    @model_validator(mode="after")
    def _delays_fit_visibility(self) -> ChannelSettings:
        # A countdown task held past the visibility timeout is redelivered: a duplicate retry.
        if self.retry_max_delay_s >= self.visibility_timeout_s:
            raise ValueError("retry_max_delay_s must be below visibility_timeout_s")
        return self
