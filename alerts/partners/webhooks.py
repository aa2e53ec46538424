"""Partner webhook subscriptions: endpoints, secret rotation, delivery history, redelivery.

Delivery itself is the channel layer's (channels.webhook signs, channels.fanout paces, retries
and dead-letters). A redelivery of a dead-lettered event replays the dead letter; any other
redelivery sends the same signed event (same webhook-id) once more and records the attempt.
"""

from __future__ import annotations

import base64
import os
import time
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.partners import service as partners
from channels import dlq, fanout, runtime
from channels import service as channels
from channels.messages import MessageId
from channels.models import DeadLetter, Message, PartnerEndpoint, WebhookAttempt
from ops.platform import crypto
from ops.platform.audit import service as audit
from ops.platform.celery_app import celery_app
from ops.platform.clock import utcnow
from ops.platform.config import Mode, Settings, get_settings
from ops.platform.db import session_scope

REDELIVER_TASK = "reunite.partners.redeliver"


def new_secret() -> str:
    """A Standard Webhooks secret: 'whsec_' and base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def register(
    session: Session,
    partner_id: int,
    url: str,
    events: list[str],
    language: str | None,
    settings: Settings,
    *,
    timeout_s: float | None = None,
) -> tuple[PartnerEndpoint, str]:
    """Register an endpoint (SSRF-checked in production); returns it and its new secret."""

    partners.check_webhook_url(url, allow_private=settings.mode is not Mode.PRODUCTION)
    secret = new_secret()
    row = channels.add_endpoint(
        session, partner_id, url, secret, events=events, language=language, timeout_s=timeout_s
    )
    audit.record(
        session,
        actor=f"partner:{partner_id}",
        action="partner.endpoint_added",
        subject=f"partner:{partner_id}",
        detail={"endpoint": row.id, "events": events},
    )
    return row, secret


def endpoints_of(session: Session, partner_id: int) -> list[PartnerEndpoint]:
    """The partner's endpoints."""
    return list(
        session.scalars(
            select(PartnerEndpoint)
            .where(PartnerEndpoint.partner_id == partner_id)
            .order_by(PartnerEndpoint.id)
        )
    )


def own_endpoint(session: Session, partner_id: int, endpoint_id: int) -> PartnerEndpoint:
    """One of the partner's endpoints, or PartnerError."""
    row = session.get(PartnerEndpoint, endpoint_id)
    if row is None or row.partner_id != partner_id:
        raise LookupError(f"endpoint {endpoint_id} not found")
    return row


def rotate_secret(
    session: Session, partner_id: int, endpoint_id: int, overlap: timedelta = timedelta(0)
) -> tuple[PartnerEndpoint, str]:
    """Replace the endpoint's signing secret (returned once); the old one co-signs for `overlap`."""
    row = own_endpoint(session, partner_id, endpoint_id)
    secret = new_secret()
    row.previous_secret_enc = row.secret_enc if overlap > timedelta(0) else None
    row.previous_secret_until = utcnow() + overlap if overlap > timedelta(0) else None
    row.secret_enc = crypto.encrypt(secret)
    audit.record(
        session,
        actor=f"partner:{partner_id}",
        action="partner.endpoint_secret_rotated",
        subject=f"partner:{partner_id}",
        detail={"endpoint": row.id},
    )
    return row, secret


def remove(session: Session, partner_id: int, endpoint_id: int) -> None:
    """Deactivate an endpoint (its history stays for the ledger)."""
    row = own_endpoint(session, partner_id, endpoint_id)
    row.active = False


def deliveries(session: Session, partner_id: int, limit: int) -> list[WebhookAttempt]:
    """The partner's most recent delivery attempts."""
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.partner_id == partner_id)
            .order_by(WebhookAttempt.id.desc())
            .limit(limit)
        )
    )


def request_redelivery(session: Session, partner_id: int, message_id: str, endpoint_id: int) -> str:
    """Queue a redelivery; returns how ("dead_letter_replay" or "redelivery")."""

    endpoint = own_endpoint(session, partner_id, endpoint_id)
    message = session.get(Message, message_id)
    # Only what the partner could have received: its area, formats and drill choice, and the
    # endpoint's event subscription. Anything else is "not found", not an existence oracle.
    event = str(MessageId.parse(message_id).event) if message is not None else ""
    if (
        message is None
        or not runtime.ports().audience.reaches(session, message)(partner_id)
        or (endpoint.events and event not in endpoint.events)
    ):
        raise LookupError("message not found")
    for letter in session.scalars(
        select(DeadLetter).where(
            DeadLetter.message_id == message_id,
            DeadLetter.channel == "webhook",
            DeadLetter.replayed_at.is_(None),
        )
    ):
        if any(int(t) == endpoint_id for t, _p in letter.targets):
            dlq.replay(session, letter.id)
            return "dead_letter_replay"
    session.commit()

    celery_app.send_task(REDELIVER_TASK, args=[message_id, endpoint_id], queue="webhook")
    return "redelivery"


def redeliver(
    message_id: str, endpoint_id: int, attempt: int | None = None, first_at: float | None = None
) -> str:
    """Send one message's signed event to one endpoint again, through the same path as every
    webhook (SSRF check, breaker, concurrency budget, pacing, attempt record); a retry comes
    back as this task after the backoff. Returns "ok" or the reason it did not go out."""

    if attempt is None:
        with session_scope() as session:
            attempt = (
                session.scalar(
                    select(func.max(WebhookAttempt.attempt)).where(
                        WebhookAttempt.message_id == message_id,
                        WebhookAttempt.endpoint_id == endpoint_id,
                    )
                )
                or 0
            )
    first_at = first_at if first_at is not None else time.time()
    tally, nxt = fanout.run_webhook(
        message_id,
        endpoint_id,
        attempt,
        first_at,
        get_settings().channels,
        channels.delivery_for,
        redelivery=True,
    )
    if nxt is not None:
        celery_app.send_task(
            REDELIVER_TASK,
            args=[message_id, endpoint_id, nxt.attempt, first_at],
            queue="webhook",
            countdown=nxt.countdown,
        )
    if tally.sent:
        return "ok"
    return tally.reasons.most_common(1)[0][0] if tally.reasons else "retry"
