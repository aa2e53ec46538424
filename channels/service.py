"""The fan-out entry points the geofencing engine calls, and the ledger operators read.

Flow: the wave engine calls `create_message` in the transaction that decides the wave, then
(from its own Celery task, once per shard) `fan_out_devices` with the claimed device ids,
`fan_out_partners` once per message, and `fan_out_topics` when FCM goes by geo cell. Each
enqueues thin channel tasks (queues apns, fcm, sms, webhook) that `channels.fanout` runs.
Broker messages carry ids only: addresses are decrypted inside the task, never queued.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from channels import broadcast, ledger, messages, reconcile, runtime, sms_http, sms_parts
from channels.base import Area, Delivery
from channels.ledger import KEY_TTL_S, Ledger, Target
from channels.messages import AlertStatus, MessageId, MessageKind
from channels.models import DeadLetter, Message, PartnerEndpoint, WebhookAttempt
from channels.schemas import (
    CaseDeliveries,
    ChannelCount,
    DeadLetterCount,
    MessageDeliveries,
    WebhookAttemptRead,
)
from channels.webhook import WebhookChannel
from ops.platform import crypto
from ops.platform.celery_app import celery_app
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis

TASKS = {
    "apns": ("reunite.channels.apns", "apns"),
    "fcm": ("reunite.channels.fcm", "fcm"),
    "sms": ("reunite.channels.sms", "sms"),
    "fcm_topic": ("reunite.channels.fcm_topics", "fcm"),
    "webhook": ("reunite.channels.webhook", "webhook"),
    "sms_broadcast": ("reunite.channels.sms_broadcast", "sms"),
}
TOPIC_BATCH = 100
# Priority lanes. kombu's Redis transport serves priority 0 first across every queue a worker
# consumes, then 3, 6, 9. The first batches of every alert and every batch of a closing notice
# go in the urgent lane, so a new case or a "found" notice never waits behind another case's
# bulk; the rest of a wave, and every retry, go in the bulk lane.
URGENT, BULK = 0, 6
HEAD_BATCHES = 2  # per message and channel


def lane(message_id: str, head: bool = False) -> int:
    """The priority of a unit of this message's channel work."""
    return URGENT if head or MessageId.parse(message_id).kind.closes else BULK


def create_message(
    session: Session, case_id: str, kind: MessageKind, wave: int, area: Area | None
) -> Message:
    """Persist a case message (in the caller's transaction); fan it out after the commit."""
    kind = MessageKind(kind)
    prefix = MessageId.prefix(case_id, kind, wave)
    n = session.scalar(select(func.count()).where(Message.id.startswith(prefix))) or 0
    now = utcnow()
    message = Message(
        id=str(MessageId(case_id, kind, wave, n + 1)),
        case_id=case_id,
        kind=str(kind),
        wave=wave,
        area=area.to_json() if area is not None else None,
        created_at=now,
        expires_at=now + timedelta(seconds=get_settings().channels.message_ttl_s),
        rendered=_render(session, case_id, kind, wave),
    )
    session.add(message)
    session.flush()
    return message


def _aware(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _render(session: Session, case_id: str, kind: MessageKind, wave: int) -> dict | None:
    """What the message says, in every language, as of now: stored once, sent unchanged."""
    found = runtime.ports().alerts.content(session, case_id, kind, wave)
    if found is None:
        return None
    alert, languages = found
    settings = get_settings()
    rendered = messages.render_all(
        alert,
        runtime.languages(languages),
        settings.timezone,
        sms_max_parts=settings.channels.max_sms_parts,
    )
    return {"status": str(alert.status), "languages": messages.rendering_to_json(rendered)}


def enqueue(
    channel: str,
    message_id: str,
    targets: list,
    attempt: int = 0,
    first_at: float | None = None,
    countdown: float | None = None,
    priority: int | None = None,
) -> None:
    """Hand one unit of channel work to its queue (a retry goes in the message's lane)."""
    name, queue = TASKS[channel]
    args = [message_id, targets, attempt, first_at if first_at is not None else time.time()]
    priority = lane(message_id) if priority is None else priority
    # The ledger expects an answer: past this deadline the reconciler queues the rest again.
    grace = get_settings().channels.owner_grace_s
    reconcile.expect(get_redis(), message_id, channel, (countdown or 0.0) + grace)
    celery_app.send_task(name, args=args, queue=queue, countdown=countdown, priority=priority)


def use_fcm_topics(device_count: int) -> bool:
    """True when a wave's FCM devices exceed the operator's threshold: go by geo-cell topic."""
    threshold = get_settings().channels.fcm_topic_threshold
    return threshold > 0 and device_count > threshold


def fan_out_devices(
    message_id: str,
    device_ids: Sequence[int],
    *,
    fcm_via_topics: bool = False,
    test_only: bool = False,
) -> dict[str, int]:
    """Split claimed devices into per-platform batches and enqueue them; counts per channel.

    A drill or system test (test_only) goes to the partners' test devices only.
    """
    s = get_settings().channels
    by_channel: dict[str, list[Target]] = defaultdict(list)
    ids = [int(i) for i in device_ids]
    with session_scope() as session:
        routes = runtime.ports().devices.routes(session, ids, test_only=test_only)
        for device_id, platform, partner_id in routes:
            by_channel[platform].append(Target(device_id, partner_id))
    if fcm_via_topics:
        by_channel.pop("fcm", None)
    sizes = {name: runtime.limits(name, s).batch for name in ("apns", "fcm", "sms")}
    r = get_redis()
    now = time.time()
    for channel, targets in by_channel.items():
        targets.sort(key=lambda t: t.id)
        Ledger(r, message_id, channel).target(targets)
        size = sizes[channel]
        starts = range(0, len(targets), size)
        # Which of these batches are among the message's first HEAD_BATCHES on this channel
        # (shard tasks call this concurrently; the counter orders them).
        seen = r.incrby(f"ch:head:{message_id}:{channel}", len(starts)) - len(starts)
        r.expire(f"ch:head:{message_id}:{channel}", KEY_TTL_S)
        for n, start in enumerate(starts):
            batch = [t.id for t in targets[start : start + size]]
            head = seen + n < HEAD_BATCHES
            enqueue(channel, message_id, batch, 0, now, priority=lane(message_id, head))
    return {channel: len(targets) for channel, targets in by_channel.items()}


def fan_out_topics(message_id: str, cells: Sequence[str]) -> int:
    """Send the message to every covering geo-cell FCM topic; returns the topic count."""
    unique = list(dict.fromkeys(str(c) for c in cells))
    Ledger(get_redis(), message_id, "fcm_topic").target([Target(c) for c in unique])
    now = time.time()
    for start in range(0, len(unique), TOPIC_BATCH):
        enqueue("fcm_topic", message_id, unique[start : start + TOPIC_BATCH], 0, now, None, URGENT)
    return len(unique)


def told_by_area(session: Session, case_id: str) -> tuple[list[str], bool]:
    """How the case's alerts reached people we cannot list: the FCM cell topics they went to,
    and whether the carrier broadcast them to an area. Its closing notice must go there too."""
    r = get_redis()
    alerts = session.scalars(
        select(Message.id).where(Message.case_id == case_id, Message.kind == MessageKind.ALERT)
    ).all()
    topics: set[str] = set()
    broadcast = False
    for message_id in alerts:
        topics |= Ledger(r, message_id, "fcm_topic").targets()
        broadcast = broadcast or bool(Ledger(r, message_id, "sms_broadcast").targets())
    return sorted(topics), broadcast


def latest_area(session: Session, case_id: str) -> Area | None:
    """The area of the case's newest alert (where a closing notice is broadcast)."""
    area = session.scalar(
        select(Message.area)
        .where(Message.case_id == case_id, Message.kind == MessageKind.ALERT)
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    return Area.from_json(area)


def broadcast_polygons(message_id: str) -> list[str]:
    """Where the carrier broadcasts this message (CAP polygons): an alert, the part of its area
    no earlier broadcast of the case covered; a closing notice, everything broadcast before."""
    r = get_redis()
    with session_scope() as session:
        message = session.get(Message, message_id)
        if message is None:
            return []
        rows = session.execute(
            select(Message.id, Message.area).where(
                Message.case_id == message.case_id,
                Message.kind == MessageKind.ALERT,
                Message.created_at <= message.created_at,
                Message.id != message.id,
            )
        ).all()
        own = Area.from_json(message.area)
        closes = MessageKind(message.kind).closes
    earlier = [
        area
        for other_id, doc in rows
        if (area := Area.from_json(doc)) is not None
        and Ledger(r, other_id, "sms_broadcast").targets()
    ]
    if closes:
        return broadcast.told(earlier) if earlier else broadcast.new_ground(own, []) if own else []
    return broadcast.new_ground(own, earlier) if own is not None else []


def broadcast_area(message_id: str, languages: Sequence[str]) -> bool:
    """Ask the SMS carrier to broadcast to the area no earlier broadcast covered, if the
    operator turned it on; False when off or when nothing is left to cover."""
    s = get_settings().channels
    if not s.sms_area_broadcast or s.sms_http is None:
        return False
    if not broadcast_polygons(message_id):
        return False
    unique = list(dict.fromkeys(languages))
    Ledger(get_redis(), message_id, "sms_broadcast").target([Target(lang) for lang in unique])
    enqueue("sms_broadcast", message_id, unique, 0, time.time(), None, URGENT)
    return True


def fan_out_partners(message_id: str) -> int:
    """One signed webhook event per active partner endpoint that wants this kind of event."""
    with session_scope() as session:
        message = session.get(Message, message_id)
        if message is None:
            return 0
        event = str(MessageId.parse(message.id).event)
        # Only partners whose area of interest intersects the alert get it, and the message
        # goes on the partners' live stream once.
        audience = runtime.ports().audience
        reaches = audience.reaches(session, message)
        endpoints = [
            (e.id, e.partner_id)
            for e in session.scalars(select(PartnerEndpoint).where(PartnerEndpoint.active))
            if (not e.events or event in e.events) and reaches(e.partner_id)
        ]
        audience.announce(session, message, event)
    Ledger(get_redis(), message_id, "webhook").target([Target(i, p) for i, p in endpoints])
    now = time.time()
    for endpoint_id, _partner in endpoints:  # one event per partner: always urgent
        enqueue("webhook", message_id, [endpoint_id], 0, now, None, URGENT)
    return len(endpoints)


def add_endpoint(
    session: Session,
    partner_id: int,
    url: str,
    secret: str,
    *,
    events: Sequence[str] = (),
    rate_per_s: float = WebhookChannel.rate_per_second,
    max_concurrency: int = WebhookChannel.concurrency,
    language: str | None = None,
    timeout_s: float | None = None,
) -> PartnerEndpoint:
    """Register a partner webhook endpoint (the partner issue adds the API for this)."""
    row = PartnerEndpoint(
        partner_id=partner_id,
        url=url,
        secret_enc=crypto.encrypt(secret),
        events=list(events),
        rate_per_s=rate_per_s,
        max_concurrency=max_concurrency,
        language=language,
        timeout_s=timeout_s,
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def _build_delivery(message_id: str) -> Delivery | None:
    with session_scope() as session:
        message = session.get(Message, message_id)
        if message is None:
            return None
        doc = message.rendered
        if doc is None:  # erased (or a message from before renderings were stored)
            doc = _render(session, message.case_id, MessageKind(message.kind), message.wave)
            if doc is None:
                return None
        return Delivery(
            message_id=message.id,
            case_id=message.case_id,
            kind=MessageKind(message.kind),
            wave=message.wave,
            messages=messages.rendering_from_json(doc["languages"]),
            expires_at=message.expires_at,
            area=Area.from_json(message.area),
            sent_at=_aware(message.created_at),
            status=AlertStatus(doc["status"]),
        )


def delivery_for(message_id: str) -> Delivery | None:
    """The rendered message, rendered once per worker process (None if it no longer exists)."""
    return runtime.cached_delivery(message_id, lambda: _build_delivery(message_id))


def _counts(rows: dict[tuple[str, int], dict[str, int]]) -> list[ChannelCount]:
    return [
        ChannelCount(channel=channel, partner_id=partner or None, **stats)
        for (channel, partner), stats in sorted(rows.items())
    ]


def case_deliveries(session: Session, case_id: str, attempts_limit: int = 200) -> CaseDeliveries:
    """The delivery ledger of a case: live counts per message, channel and partner."""
    r = get_redis()
    msgs = session.scalars(
        select(Message).where(Message.case_id == case_id).order_by(Message.created_at)
    ).all()
    totals: dict[tuple[str, int], dict[str, int]] = {}
    out: list[MessageDeliveries] = []
    for m in msgs:
        rows = ledger.live_counts(r, m.id) or ledger.stored_counts(session, m.id)
        for key, stats in rows.items():
            acc = totals.setdefault(key, dict.fromkeys(ledger.STATS, 0))
            for stat, n in stats.items():
                acc[stat] += n
        out.append(
            MessageDeliveries(
                message_id=m.id,
                kind=m.kind,
                wave=m.wave,
                created_at=m.created_at,
                counts=_counts(rows),
                stuck_channels=reconcile.stuck_channels(r, m.id, sorted({c for c, _ in rows})),
                requeued=sum(reconcile.requeued(r, m.id).values()),
            )
        )
    attempts = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.case_id == case_id)
        .order_by(WebhookAttempt.id.desc())
        .limit(attempts_limit)
    ).all()
    letters: dict[tuple[str, str], int] = defaultdict(int)
    for channel, reason, targets in session.execute(
        select(DeadLetter.channel, DeadLetter.reason, DeadLetter.targets).where(
            DeadLetter.case_id == case_id, DeadLetter.replayed_at.is_(None)
        )
    ):
        letters[(channel, reason)] += len(targets or [])
    return CaseDeliveries(
        case_id=case_id,
        totals=_counts(totals),
        messages=out,
        webhook_attempts=[WebhookAttemptRead.model_validate(a) for a in attempts],
        dead_letters=[
            DeadLetterCount(channel=c, reason=reason, targets=n)
            for (c, reason), n in sorted(letters.items())
        ],
    )


def case_totals(session: Session, case_ids: list[str]) -> dict[str, dict[str, int]]:
    """Each case's ledger counts summed over its messages, channels and partners (the
    dashboard's numbers: the same stats as `case_deliveries`, without attempts or letters)."""
    r = get_redis()
    out = {case_id: dict.fromkeys(ledger.STATS, 0) for case_id in case_ids}
    if not case_ids:
        return out
    rows = session.execute(select(Message.id, Message.case_id).where(Message.case_id.in_(case_ids)))
    for message_id, case_id in rows:
        counts = ledger.live_counts(r, message_id) or ledger.stored_counts(session, message_id)
        acc = out[case_id]
        for stats in counts.values():
            for stat, n in stats.items():
                acc[stat] += n
    return out


def requeue(channel: str, message_id: str, targets: list) -> None:
    """Queue open targets again (the reconciler's hand): the retry horizon still counts from
    the message's creation, so a target cannot be retried forever."""
    with session_scope() as session:
        message = session.get(Message, message_id)
        first_at = message.created_at.timestamp() if message is not None else time.time()
    enqueue(channel, message_id, targets, 0, first_at)


class ReportsOff(LookupError):
    """No HTTP gateway or no callback secret is configured: reports are not taken."""


def record_gateway_report(body: bytes, headers: dict[str, str]) -> sms_parts.Receipt:
    """Check and record an HTTP SMS gateway's delivery report; the receipt it carried.

    Raises ReportsOff without a configured secret and sms_http.ReportRefused for an unsigned
    or malformed report. Idempotent: the gateway may send a report twice.
    """
    gateway = get_settings().channels.sms_http
    if gateway is None or gateway.callback_secret is None:
        raise ReportsOff("no sms_http callback_secret configured")
    receipt = sms_http.read_report(gateway.callback_secret, body, headers)
    parts = runtime.parts_store(sms_http.SmsHttpChannel.name)
    parts.receipt(receipt)
    parts.flush()
    return receipt
