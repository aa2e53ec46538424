"""Channel settings: one typed block per provider plus the operator knobs of the fan-out.

They are part of the one Settings object (`settings.channels`), validated at start-up, so
they live with it in the platform; the channels read them. Environment variables use the
nested delimiter, e.g. REUNITE_CHANNELS__APNS__BASE_URL or REUNITE_CHANNELS__RETRY_HORIZON_S
(or a whole block as JSON: REUNITE_CHANNELS__APNS='{"topic": ...}').
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

# Parts an SMS text may take (70 UCS-2 or 160 GSM-7 characters each, less the UDH when split).
SMS_MAX_PARTS = 2


class HttpTransportSettings(BaseModel):
    """TLS and timeout settings shared by the HTTP channels."""

    timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    verify_tls: bool = True
    ca_bundle: Path | None = None  # a private CA, e.g. the test peers' self-signed cert

    def ssl_verify(self) -> ssl.SSLContext | bool:
        """What httpx's verify= wants."""
        if not self.verify_tls:
            return False
        if self.ca_bundle is not None:
            return ssl.create_default_context(cafile=str(self.ca_bundle))
        return True


class ApnsSettings(BaseModel):
    """APNs provider settings; auth_key is the .p8 PEM text."""

    base_url: str = "https://api.push.apple.com"
    topic: str  # the app's bundle id
    team_id: str
    key_id: str
    auth_key: SecretStr
    connections: int = Field(default=2, ge=1, le=32)
    streams_per_connection: int = Field(default=100, ge=1, le=1000)
    # Apple: refresh no more often than every 20 min and no less often than every 60 min.
    token_refresh_s: float = Field(default=50 * 60, ge=20 * 60, le=60 * 60)
    default_ttl_s: int = Field(default=24 * 3600, ge=0)
    transport: HttpTransportSettings = HttpTransportSettings()

    @staticmethod
    def read_auth_key(path: Path) -> SecretStr:
        """Read a .p8 key file into a SecretStr."""
        return SecretStr(path.read_text())


class FcmSettings(BaseModel):
    """FCM project and service-account settings."""

    project_id: str
    client_email: str
    private_key: SecretStr  # PEM from the service-account JSON
    private_key_id: str | None = None
    token_uri: str = "https://oauth2.googleapis.com/token"
    base_url: str = "https://fcm.googleapis.com"
    default_ttl_s: int = Field(default=24 * 3600, ge=0, le=28 * 24 * 3600)
    # Refresh this long before the access token's stated expiry, so no request carries a stale one.
    token_margin_s: float = Field(default=300, ge=0)
    max_connections: int = Field(default=20, ge=1)
    android_channel_id: str = "reunite_alerts"
    transport: HttpTransportSettings = HttpTransportSettings()

    @classmethod
    def from_service_account(cls, info: Mapping[str, Any], **overrides: Any) -> FcmSettings:
        """Build settings from a parsed service-account JSON document."""
        fields = {
            "project_id": info["project_id"],
            "client_email": info["client_email"],
            "private_key": SecretStr(info["private_key"]),
            "private_key_id": info.get("private_key_id"),
            "token_uri": info.get("token_uri", "https://oauth2.googleapis.com/token"),
        }
        return cls(**{**fields, **overrides})

    @classmethod
    def from_service_account_file(cls, path: Path, **overrides: Any) -> FcmSettings:
        """Build settings from a service-account JSON file."""
        return cls.from_service_account(json.loads(path.read_text()), **overrides)


class SmsHttpSettings(BaseModel):
    """Gateway URL, token and paths; where and how it reports delivery."""

    base_url: str
    api_token: SecretStr
    sender_id: str = "Reunite"
    send_path: str = "/v1/messages"
    broadcast_path: str = "/v1/broadcasts"
    max_connections: int = Field(default=20, ge=1)
    transport: HttpTransportSettings = HttpTransportSettings()
    # Delivery reports: each message asks the gateway to POST its status here (our
    # /api/v1/providers/sms/receipts as the gateway reaches it); None: none are asked for.
    status_callback_url: str | None = None
    # Standard Webhooks secret ("whsec_...") the gateway signs its reports with; the callback
    # route answers 404 without one, so nobody can mark deliveries unsigned.
    callback_secret: SecretStr | None = None


class SmppSettings(BaseModel):
    """SMSC bind and submit settings."""

    host: str
    port: int = Field(default=2775, ge=1, le=65535)
    system_id: str
    password: SecretStr
    system_type: str = ""
    tls: bool = False
    source_addr: str = "Reunite"
    source_addr_ton: int = 5  # alphanumeric sender id
    source_addr_npi: int = 0
    dest_addr_ton: int = 1  # international
    dest_addr_npi: int = 1  # E.164
    long_message_mode: Literal["udh", "payload"] = "udh"
    # "transceiver" sends and receives (receipts) on one bind; "transmitter" for an SMSC that
    # takes no transceiver binds: receipts then come on a receiver bind the channel opens too.
    bind_type: Literal["transmitter", "transceiver"] = "transceiver"
    # Ask for a receipt per part (registered_delivery=1): all parts DELIVRD is "delivered".
    delivery_receipts: bool = True
    window_size: int = Field(default=10, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    submit_timeout_s: float = Field(default=10.0, gt=0)
    # Carriers throttle per bind (often 10-30 PDUs/s): on ESME_RTHROTTLED every worker on the
    # bind holds off this long, then the throttled part (only it) is resubmitted, up to
    # throttle_resubmits times before the unit goes back to the queue for the missing parts.
    throttle_retry_s: float = Field(default=1.0, ge=0)
    throttle_resubmits: int = Field(default=2, ge=0, le=20)
    # A lost receiver bind (transmitter mode) is bound again after this.
    receiver_retry_s: float = Field(default=5.0, gt=0)


class WebhookSettings(BaseModel):
    """Delivery settings shared by every partner endpoint (URLs and secrets live per partner)."""

    user_agent: str = "Reunite-Webhooks/1"
    max_connections: int = Field(default=50, ge=1)
    # A short default: a hanging partner holds a webhook worker slot this long at most.
    transport: HttpTransportSettings = HttpTransportSettings(timeout_s=3.0, connect_timeout_s=2.0)


class ChannelSettings(BaseModel):
    """Provider blocks (None: channel not configured) and delivery knobs."""

    apns: ApnsSettings | None = None
    fcm: FcmSettings | None = None
    smpp: SmppSettings | None = None
    sms_http: SmsHttpSettings | None = None
    sms_provider: Literal["smpp", "http"] = "smpp"
    webhook: WebhookSettings = WebhookSettings()

    # Where message links point; unset: the public case page, REUNITE_PUBLIC_BASE_URL + "/c/".
    deep_link_base: str | None = None
    message_ttl_s: int = Field(default=24 * 3600, ge=60)

    # Provider limits: each channel class declares its own (rate_per_second, batch_size,
    # concurrency); a value here overrides it for this deployment (None: the class's).
    # Batches: devices per channel task (a killed worker re-sends at most its in-flight batch).
    apns_batch: int | None = Field(default=None, ge=1, le=10_000)
    fcm_batch: int | None = Field(default=None, ge=1, le=10_000)
    sms_batch: int | None = Field(default=None, ge=1, le=1_000)
    # Concurrent sends inside one batch task (HTTP/2 streams in flight).
    apns_concurrency: int | None = Field(default=None, ge=1, le=5_000)
    fcm_concurrency: int | None = Field(default=None, ge=1, le=5_000)
    sms_concurrency: int | None = Field(default=None, ge=1, le=500)
    # Token buckets shared by every worker (per provider; SMS per bind). SMPP counts submit_sm
    # PDUs, as carriers do: a two-part message takes two; the HTTP gateway counts requests.
    apns_rate_per_s: float | None = Field(default=None, gt=0)
    fcm_rate_per_s: float | None = Field(default=None, gt=0)
    sms_rate_per_s: float | None = Field(default=None, gt=0)
    # Above this many devices in one FCM wave, send geo-cell topic messages instead.
    fcm_topic_threshold: int = Field(default=200_000, ge=0)
    # The one SMS length limit: messages are written to fit it and the SMS channels split by it.
    max_sms_parts: int = Field(default=SMS_MAX_PARTS, ge=1, le=20)
    # Carriers that target by cell themselves get one area broadcast per wave (sms_http block).
    sms_area_broadcast: bool = False

    # Retries: exponential backoff with full jitter, never earlier than Retry-After.
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_delay_s: float = Field(default=300.0, gt=0)
    retry_horizon_s: float = Field(default=6 * 3600.0, gt=0)
    # A task that cannot get a partner's concurrency budget reschedules itself after this.
    budget_wait_s: float = Field(default=0.25, gt=0)
    budget_lease_s: float = Field(default=60.0, gt=0)

    # The reconciler (channels.reconcile): a queued unit whose targets are not all final this
    # long after it was due is taken as lost and queued again; the reconciler runs this often.
    owner_grace_s: float = Field(default=120.0, gt=0)
    reconcile_interval_s: float = Field(default=30.0, gt=0)

    # Circuit breaker per endpoint: open after N consecutive failures, probe after open_s;
    # consecutive timeouts open it after breaker_timeouts (a hanging endpoint holds a slot for
    # each whole timeout, so it is cut off within about one round of timeouts).
    breaker_failures: int = Field(default=5, ge=1)
    breaker_timeouts: int = Field(default=2, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)

    # Celery+Redis redelivers an unacknowledged task after this; see docs/PERFORMANCE.md.
    visibility_timeout_s: int = Field(default=600, ge=1)

    @model_validator(mode="after")
    def _delays_fit_visibility(self) -> ChannelSettings:
        # A countdown task held past the visibility timeout is redelivered: a duplicate retry.
        if self.retry_max_delay_s >= self.visibility_timeout_s:
            raise ValueError("retry_max_delay_s must be below visibility_timeout_s")
        return self
