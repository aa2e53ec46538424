"""Fan-out tables: messages, partner endpoints, the persisted ledger, attempts, dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class Message(Base):
    """One message of a case (alert wave, update, closure).

    `rendered` is what it says in every language, rendered once when the message is created:
    every push, SMS and webhook event of the message (retries and re-queues included) carries
    the same text, whatever changes on the case later (a change is a new message). Erasure
    clears it with the rest of the child's details.
    """

    __tablename__ = "channel_messages"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    wave: Mapped[int] = mapped_column(Integer, default=0)
    # {"cap_circle", "cap_polygon", "radius_km", "center"}; never a device list.
    area: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # {"status": ..., "languages": {tag: RenderedMessage fields}}; None once erased.
    rendered: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PartnerEndpoint(Base):
    """A partner's webhook endpoint; the secret is Fernet-encrypted (ops.platform.crypto)."""

    __tablename__ = "partner_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # Event types wanted ("alert.published", ...); empty means all.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(16))
    rate_per_s: Mapped[float] = mapped_column(Float, default=10.0)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=2)
    # Seconds one request may take (None: the webhook default, 3 s): a slow partner holds a
    # worker slot no longer than its own timeout.
    timeout_s: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Partner issue: after a secret rotation the previous secret also signs until this time.
    previous_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_until: Mapped[datetime | None]


class DeliveryCount(Base):
    """Ledger snapshot per message, channel and partner (Redis holds the live counters)."""

    __tablename__ = "delivery_counts"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("channel_messages.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    partner_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: none (topics)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    targeted: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    retrying: Mapped[int] = mapped_column(Integer, default=0)
    dead: Mapped[int] = mapped_column(Integer, default=0)
    dead_lettered: Mapped[int] = mapped_column(Integer, default=0)
    # Not sent because the case closed before their turn (channels.closure).
    withdrawn: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Of those sent, confirmed on the handset by the carrier's delivery receipt (SMS only).
    delivered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    """One POST to a partner endpoint, with its classified outcome."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_case", "case_id", "partner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(120))
    case_id: Mapped[str] = mapped_column(String(36))
    partner_id: Mapped[int] = mapped_column(Integer)
    endpoint_id: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetter(Base):
    """Targets that still failed at the retry horizon; `reunite dlq replay` re-enqueues them."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(120), index=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    # [target id, partner id] pairs (device, endpoint or cell ids): never addresses.
    targets: Mapped[list[Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]
