"""Running one unit of delivery work: a device batch, a topic batch, or one partner event.

Every unit follows the same steps: skip targets already done (Redis state), pace (shared
token bucket, partner concurrency budget), check the endpoint's breaker, send, then act on
each classified outcome: sent, dead (deactivate), failed (record), retry (backoff with jitter,
never before Retry-After) or, past the retry horizon, dead-letter. Progress is written to
Redis as sends complete, so a worker killed mid-batch leaves only its in-flight sends
unrecorded: the redelivered batch re-sends at most those.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from channels import closure, ledger, pacing, runtime, webhook
from channels.base import Outcome, OutcomeKind, PartnerEndpoint, Recipient
from channels.fcm import topic_for_cell
from channels.ledger import Ledger, State, Target
from channels.messages import MessageId
from channels.models import DeadLetter, Message, WebhookAttempt
from channels.models import PartnerEndpoint as EndpointRow
from ops import metrics
from ops.platform import crypto
from ops.platform.channel_settings import ChannelSettings
from ops.platform.clock import utcnow
from ops.platform.config import Mode, get_settings
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis

log = logging.getLogger(__name__)

# Sends recorded per Redis round trip; bounds what a kill can leave unrecorded, besides the
# sends in flight. The flushes and gate reads cost ~4% of a worker's CPU at 15k pushes/s; 128
# was tried and reverted: the closure test once found 20 pushes the sink had taken counted as
# withdrawn (sent but not yet recorded when something moved them; not yet explained).
FLUSH_EVERY = 32
TOKEN_CHUNK = 64
NOT_CONFIGURED = "provider_not_configured"  # dead-letter reason: the platform has no provider
GATE_EVERY = FLUSH_EVERY  # sends between two reads of the closure gate


@dataclass(frozen=True)
class Next:
    """What the task should enqueue after this unit: the same unit later, for some targets."""

    targets: list[Any]
    attempt: int
    countdown: float


@dataclass
class Tally:
    sent: int = 0
    dead: int = 0
    failed: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    withdrawn: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def backoff(s: ChannelSettings, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never earlier than the provider's Retry-After."""
    ceiling = min(s.retry_max_delay_s, s.retry_base_s * 2**attempt)
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, s.retry_max_delay_s)


def _past_horizon(s: ChannelSettings, first_at: float, delay: float) -> bool:
    return time.time() + delay - first_at > s.retry_horizon_s


class _Tokens:
    """Takes tokens from a shared bucket in chunks, so pacing costs one Redis call per chunk.
    Without a bucket (a channel that paces each provider request itself) it is the gate only.

    Every GATE_EVERY tokens it also re-reads the gate (`closure.withheld`): once it closes, no
    token is given again, so after a case closes a batch starts at most GATE_EVERY more sends
    (besides those already on the wire). One coroutine takes the tokens of a batch.
    """

    def __init__(
        self, bucket: pacing.TokenBucket | None, gate: Callable[[], bool] | None = None
    ) -> None:
        self.bucket = bucket
        self.gate = gate
        self.left = 0
        self.given = 0
        self.closed = False

    def take_now(self) -> bool | None:
        """A token without waiting: True, False when withheld, None when the chunk is used up
        (then `take` waits for the bucket)."""
        if self.closed or self.given % GATE_EVERY == 0 or (self.bucket and not self.left):
            return None
        if self.bucket is not None:
            self.left -= 1
        self.given += 1
        return True

    async def take(self) -> bool:
        """Wait for a token; False when the message was withheld meanwhile."""
        if not self.closed and self.gate is not None and self.given % GATE_EVERY == 0:
            self.closed = self.gate()
        if self.closed:
            return False
        if self.bucket is not None:
            while self.left == 0:
                granted, wait = self.bucket.try_take(TOKEN_CHUNK)
                self.left += granted
                if self.left == 0:
                    await asyncio.sleep(max(wait, 0.001))
            self.left -= 1
        self.given += 1
        return True


async def _send_many(
    items: Sequence[tuple[Target, Any]],
    send: Callable[[Any], Any],
    concurrency: int,
    tokens: _Tokens,
    led: Ledger,
) -> tuple[list[tuple[Target, Outcome]], int]:
    """Send to every item within the concurrency; the classified outcomes, and how many
    targets were withdrawn because the case closed meanwhile (already moved in the ledger).

    One loop takes a token and starts a send while fewer than `concurrency` are in flight; each
    send's completion records its outcome. (A coroutine per item waiting on a semaphore cost
    5% of a worker's CPU at 1,000 items: asyncio's Semaphore scans its waiters.)
    """
    loop = asyncio.get_running_loop()
    done: list[Target] = []
    results: list[tuple[Target, Outcome]] = []
    withheld: list[Target] = []
    running: set[asyncio.Task[Outcome]] = set()
    room: list[asyncio.Future[None]] = []

    def finished(target: Target, task: asyncio.Task[Outcome]) -> None:
        running.discard(task)
        try:
            if task.cancelled():  # the batch's loop was stopped under it: send it again later
                outcome = Outcome.retry("cancelled")
            elif (error := task.exception()) is None:
                outcome = task.result()
            else:  # a channel bug must not drop the alert: retry it
                log.error("channel %s raised instead of classifying", led.channel, exc_info=error)
                outcome = Outcome.retry(f"exception_{type(error).__name__}")
            results.append((target, outcome))
            if outcome.is_ok:
                done.append(target)
                if len(done) >= FLUSH_EVERY:
                    led.move(done, State.SENT, "sent")
                    done.clear()
        finally:
            if room and not room[0].done():
                room[0].set_result(None)

    async def wait_below(limit: int) -> None:
        while len(running) > limit:
            room[:] = [loop.create_future()]
            await room[0]

    for i, (target, recipient) in enumerate(items):
        if not (tokens.take_now() or await tokens.take()):
            withheld.extend(t for t, _ in items[i:])
            break
        if len(running) >= concurrency:
            await wait_below(concurrency - 1)
        task = loop.create_task(send(recipient))
        running.add(task)
        task.add_done_callback(functools.partial(finished, target))
    await wait_below(0)
    led.move(done, State.SENT, "sent")
    return results, led.move(withheld, State.ENDED, "withdrawn")


def _finish(
    s: ChannelSettings,
    led: Ledger,
    results: Sequence[tuple[Target, Outcome]],
    attempt: int,
    first_at: float,
    tally: Tally,
    on_dead: Callable[[list[Target], str], None] | None = None,
) -> Next | None:
    """Act on classified outcomes; returns the retry to enqueue, if any."""
    metrics.record_outcomes(led.channel, results)
    by_kind: dict[OutcomeKind, list[tuple[Target, Outcome]]] = {k: [] for k in OutcomeKind}
    for target, outcome in results:
        by_kind[outcome.kind].append((target, outcome))
        tally.reasons[outcome.reason] += 1
    tally.sent += len(by_kind[OutcomeKind.OK])
    dead_by_reason: dict[str, list[Target]] = {}
    for target, outcome in by_kind[OutcomeKind.DEAD_TARGET]:
        dead_by_reason.setdefault(outcome.reason, []).append(target)
    for reason, dead in dead_by_reason.items():
        if on_dead is not None:
            on_dead(dead, reason)
        tally.dead += led.move(dead, State.ENDED, "dead")
    tally.failed += led.move([t for t, _ in by_kind[OutcomeKind.FAILED]], State.ENDED, "failed")
    retry = by_kind[OutcomeKind.RETRY]
    if not retry:
        return None
    hints = [o.retry_after for _, o in retry if o.retry_after is not None]
    delay = backoff(s, attempt, max(hints) if hints else None)
    targets = [t for t, _ in retry]
    if _past_horizon(s, first_at, delay):
        reason = Counter(o.reason for _, o in retry).most_common(1)[0][0]
        dead_letter(led, targets, reason, attempt + 1)
        tally.dead_lettered += len(targets)
        return None
    tally.retrying += led.move(targets, State.RETRYING, "retrying")
    return Next([t.id for t in targets], attempt + 1, delay)


def dead_letter(led: Ledger, targets: Sequence[Target], reason: str, attempts: int) -> None:
    """Store targets that ran out of retries, for `reunite dlq list|replay`."""
    case_id = MessageId.parse(led.message_id).case_id
    with session_scope() as session:
        msg = session.get(Message, led.message_id)
        session.add(
            DeadLetter(
                message_id=led.message_id,
                case_id=msg.case_id if msg is not None else case_id,
                channel=led.channel,
                targets=[[t.id, t.partner_id] for t in targets],
                reason=reason[:64],
                attempts=attempts,
            )
        )
    led.move(list(targets), State.ENDED, "dead_lettered")
    metrics.record_dead_letters(led.channel, len(targets))


def give_up(
    channel: str, message_id: str, targets: Sequence[int | str], attempt: int, reason: str
) -> int:
    """Dead-letter a unit's open targets: its database, Redis or broker stayed away past the
    retry horizon. Returns how many targets were dead-lettered."""
    led = Ledger(get_redis(), message_id, channel)
    pending = led.pending(list(targets))
    if not pending:
        return 0
    with session_scope() as session:
        if channel == "webhook":
            rows = session.query(EndpointRow).filter(EndpointRow.id.in_(pending)).all()
            partner = {row.id: row.partner_id for row in rows}
        elif channel in ledger.STRING_TARGETS:
            partner = {}
        else:
            partner = runtime.ports().devices.partners_of(session, [int(i) for i in pending])
    dead = [Target(i, partner.get(i, 0)) for i in pending]
    dead_letter(led, dead, reason, attempt + 1)
    return len(dead)


def _defer_all(
    s: ChannelSettings,
    led: Ledger,
    targets: list[Target],
    attempt: int,
    first_at: float,
    wait: float,
    reason: str,
) -> Next | None:
    """The endpoint cannot be called now (breaker open): try the whole unit later."""
    if _past_horizon(s, first_at, wait):
        dead_letter(led, targets, reason, attempt)
        return None
    led.move(targets, State.RETRYING, "retrying")
    return Next([t.id for t in targets], attempt, wait + random.uniform(0, 0.2))


def _endpoint_failure(outcome: Outcome) -> bool:
    # A throttle (HTTP 429, SMPP ESME_RTHROTTLED) is the provider pacing us, not the endpoint
    # failing: counting it opened the SMS breaker whenever a carrier capped our rate.
    return outcome.kind is OutcomeKind.RETRY and not outcome.throttled


def _record_breaker(breaker: pacing.Breaker, results: Sequence[tuple[Target, Outcome]]) -> None:
    if any(o.is_ok for _, o in results):
        breaker.record(True)
    elif results and all(_endpoint_failure(o) for _, o in results):
        breaker.record(False)


def run_device_batch(
    channel: str,
    message_id: str,
    device_ids: Sequence[int],
    attempt: int,
    first_at: float,
    settings: ChannelSettings,
    build_delivery: Callable[[str], Any],
) -> tuple[Tally, Next | None]:
    """Send one message to a batch of devices on one channel (apns, fcm or sms)."""
    r = get_redis()
    led = Ledger(r, message_id, channel)
    tally = Tally()
    pending = [int(i) for i in led.pending(list(device_ids))]
    tally.skipped = len(device_ids) - len(pending)
    if not pending:
        return tally, None
    registry = runtime.ports().devices
    if closure.withheld(r, message_id):
        with session_scope() as session:
            partner = registry.partners_of(session, pending)
        targets = [Target(i, partner.get(i, 0)) for i in pending]
        tally.withdrawn += led.move(targets, State.ENDED, "withdrawn")
        return tally, None
    delivery = build_delivery(message_id)
    if delivery is None:
        return tally, None
    with session_scope() as session:
        addrs = registry.addresses(session, pending)
        found = {a.id for a in addrs}
        gone = [i for i in pending if i not in found]
        if gone:  # deactivated or opted out since fan-out
            partner = registry.partners_of(session, gone)
            led.move([Target(i, partner.get(i, 0)) for i in gone], State.ENDED, "failed")
    items = [
        (Target(a.id, a.partner_id), Recipient(a.address, a.locale, a.id, a.partner_id))
        for a in addrs
    ]
    if not items:
        return tally, None
    try:
        chan = runtime.channel(channel, settings)
    except runtime.NotConfigured:
        # No provider block for this platform: accounted for as dead letters (replayable once
        # an operator configures it), never acknowledged and dropped.
        targets = [t for t, _ in items]
        dead_letter(led, targets, NOT_CONFIGURED, attempt)
        tally.dead_lettered += len(targets)
        return tally, None
    breaker = pacing.Breaker(r, channel, settings.breaker_failures, settings.breaker_open_s)
    permit = breaker.allow()
    if not permit.allowed:
        nxt = _defer_all(
            settings, led, [t for t, _ in items], attempt, first_at, permit.wait_s, "breaker_open"
        )
        return tally, nxt
    limits = runtime.limits(channel, settings)
    bucket_name = runtime.sms_bind_name(settings) if channel == "sms" else channel
    # SMPP takes a token per part itself (carriers count PDUs); a token per message as well
    # would halve its rate.
    paced_by_channel = getattr(chan, "paces_parts", False)
    bucket = None if paced_by_channel else pacing.TokenBucket(r, bucket_name, limits.rate_per_s)
    tokens = _Tokens(bucket, gate=lambda: closure.withheld(r, message_id))

    async def send(recipient: Recipient) -> Outcome:
        return await chan.send(recipient, delivery)

    results, withdrawn = runtime.run(_send_many(items, send, limits.concurrency, tokens, led))
    tally.withdrawn += withdrawn
    _record_breaker(breaker, results)

    def deactivate(targets: list[Target], reason: str) -> None:
        with session_scope() as session:
            registry.deactivate(session, [int(t.id) for t in targets], reason)

    nxt = _finish(settings, led, results, attempt, first_at, tally, deactivate)
    return tally, nxt


# What a string-target run sends: (target, recipient) pairs and the coroutine that sends one.
Plan = tuple[list[tuple[Target, Any]], Callable[[Any], Any]]


def _run_named_targets(
    channel: str,
    message_id: str,
    targets: Sequence[str],
    attempt: int,
    first_at: float,
    settings: ChannelSettings,
    build_delivery: Callable[[str], Any],
    *,
    bucket: pacing.TokenBucket,
    concurrency: int,
    plan: Callable[[Any, Any, list[str]], Plan | None],
) -> tuple[Tally, Next | None]:
    """Send to targets named by strings (topics, languages): the ledger skips what was sent,
    the bucket paces, and outcomes retry or end like device sends."""
    r = get_redis()
    led = Ledger(r, message_id, channel)
    tally = Tally()
    pending = [str(t) for t in led.pending(list(targets))]
    if pending and closure.withheld(r, message_id):
        tally.withdrawn += led.move([Target(t) for t in pending], State.ENDED, "withdrawn")
        return tally, None
    delivery = build_delivery(message_id) if pending else None
    if delivery is None:
        return tally, None
    try:
        chan = runtime.channel(channel, settings)
    except runtime.NotConfigured:
        targets = [Target(t) for t in pending]
        dead_letter(led, targets, NOT_CONFIGURED, attempt)
        tally.dead_lettered += len(targets)
        return tally, None
    planned = plan(chan, delivery, pending)
    if planned is None:
        return tally, None
    items, send = planned
    tokens = _Tokens(bucket, gate=lambda: closure.withheld(r, message_id))
    results, tally.withdrawn = runtime.run(_send_many(items, send, concurrency, tokens, led))
    return tally, _finish(settings, led, results, attempt, first_at, tally)


def run_topics(
    message_id: str,
    cells: Sequence[str],
    attempt: int,
    first_at: float,
    settings: ChannelSettings,
    build_delivery: Callable[[str], Any],
) -> tuple[Tally, Next | None]:
    """Send one FCM topic message per geo cell (Google fans each out to its subscribers)."""

    def plan(chan: Any, delivery: Any, pending: list[str]) -> Plan:
        language = next(iter(delivery.messages))

        async def send(topic: str) -> Outcome:
            return await chan.send_topic(topic, delivery, language)

        return [(Target(c), topic_for_cell(c)) for c in pending], send

    topic_limits = runtime.limits("fcm_topic", settings)
    return _run_named_targets(
        "fcm_topic",
        message_id,
        cells,
        attempt,
        first_at,
        settings,
        build_delivery,
        bucket=pacing.TokenBucket(get_redis(), "fcm", topic_limits.rate_per_s),
        concurrency=topic_limits.concurrency,
        plan=plan,
    )


def run_area_broadcast(
    message_id: str,
    languages: Sequence[str],
    attempt: int,
    first_at: float,
    settings: ChannelSettings,
    build_delivery: Callable[[str], Any],
    polygons_of: Callable[[str], list[str]],
) -> tuple[Tally, Next | None]:
    """Ask the SMS carrier to broadcast the message to every handset in its area itself (only
    the ground no earlier broadcast of the case covered: `polygons_of`)."""

    def plan(chan: Any, delivery: Any, pending: list[str]) -> Plan | None:
        polygons = polygons_of(message_id)

        async def send(language: str) -> Outcome:
            if not polygons:  # the case's earlier broadcasts already covered all of it
                return Outcome.failed("area_already_covered")
            return await chan.broadcast_area(
                polygons,
                delivery.message_for(language).sms_text,
                message_id=f"{message_id}:{language}",
                expires_at=delivery.expires_at,
            )

        # One broadcast per alert language: the carrier cannot know a handset's language.
        return [(Target(lang), lang) for lang in pending if lang in delivery.messages], send

    broadcast_limits = runtime.limits("sms_broadcast", settings)
    return _run_named_targets(
        "sms_broadcast",
        message_id,
        languages,
        attempt,
        first_at,
        settings,
        build_delivery,
        bucket=pacing.TokenBucket(
            get_redis(), runtime.sms_bind_name(settings), broadcast_limits.rate_per_s
        ),
        concurrency=broadcast_limits.concurrency,
        plan=plan,
    )


def run_webhook(
    message_id: str,
    endpoint_id: int,
    attempt: int,
    first_at: float,
    settings: ChannelSettings,
    build_delivery: Callable[[str], Any],
    *,
    redelivery: bool = False,
) -> tuple[Tally, Next | None]:
    """Deliver one signed event to one partner endpoint, within its rate and concurrency.

    A redelivery (the partner asked for the event again) sends even though the ledger already
    holds a final state for it; the ledger keeps counting the first delivery.
    """
    r = get_redis()
    led = Ledger(r, message_id, "webhook")
    tally = Tally()
    if not redelivery and not led.pending([endpoint_id]):
        tally.skipped = 1
        return tally, None
    with session_scope() as session:
        row = session.get(EndpointRow, endpoint_id)
        if row is None or not row.active:
            led.move([Target(endpoint_id, row.partner_id if row else 0)], State.ENDED, "failed")
            tally.reasons["endpoint_inactive"] += 1
            return tally, None
        endpoint = PartnerEndpoint(
            partner_id=str(row.partner_id),
            url=row.url,
            secret=_secret(row.secret_enc),
            language=row.language,
            previous_secret=previous_secret(row),
            timeout_s=row.timeout_s,
        )
        partner_id, rate, limit = row.partner_id, row.rate_per_s, row.max_concurrency
    target = Target(endpoint_id, partner_id)
    if closure.withheld(r, message_id):
        tally.withdrawn += led.move([target], State.ENDED, "withdrawn")
        tally.reasons["case_closed"] += 1
        return tally, None
    if not _url_allowed(endpoint.url):
        # SSRF: in production a host that resolves to a private or loopback address at send
        # time (DNS rebinding) is never called.
        log.warning("partner endpoint %s refused: resolves to a non-public address", endpoint_id)
        tally.failed += led.move([target], State.ENDED, "failed")
        tally.reasons["unsafe_url"] += 1
        return tally, None
    name = f"webhook:{endpoint_id}"
    breaker = pacing.Breaker(
        r, name, settings.breaker_failures, settings.breaker_open_s, settings.breaker_timeouts
    )
    permit = breaker.allow()
    if not permit.allowed:
        return tally, _defer_all(
            settings, led, [target], attempt, first_at, permit.wait_s, "breaker_open"
        )
    budget = pacing.Budget(r, name, limit, settings.budget_lease_s)
    holder = budget.acquire()
    if holder is None:
        # Never block a worker on a busy partner: come back later, same attempt.
        return tally, Next([endpoint_id], attempt, settings.budget_wait_s * random.uniform(1, 2))
    try:
        granted, wait = pacing.TokenBucket(r, name, rate, burst=max(1.0, rate / 4)).try_take(1)
        if not granted:
            return tally, Next([endpoint_id], attempt, wait + random.uniform(0, 0.05))
        delivery = build_delivery(message_id)
        if delivery is None:
            tally.reasons["message_gone"] += 1
            return tally, None
        chan = runtime.channel("webhook", settings)
        started = time.monotonic()
        outcome = runtime.run(chan.send(endpoint, delivery))
        elapsed_ms = int((time.monotonic() - started) * 1000)
    finally:
        budget.release(holder)
    breaker.record(not _endpoint_failure(outcome), timed_out=outcome.reason == "timeout")
    with session_scope() as session:
        session.add(
            WebhookAttempt(
                message_id=message_id,
                case_id=delivery.case_id,
                partner_id=partner_id,
                endpoint_id=endpoint_id,
                attempt=attempt + 1,
                outcome=str(outcome.kind),
                reason=outcome.reason[:64],
                status=outcome.status,
                duration_ms=elapsed_ms,
            )
        )
    if outcome.is_ok:
        led.move([target], State.SENT, "sent")

    def disable(_targets: list[Target], reason: str) -> None:
        with session_scope() as session:
            ep = session.get(EndpointRow, endpoint_id)
            if ep is not None:
                ep.active = False
        log.warning("partner endpoint %s disabled: %s", endpoint_id, reason)

    return tally, _finish(settings, led, [(target, outcome)], attempt, first_at, tally, disable)


def _url_allowed(url: str) -> bool:
    """False when production mode refuses the URL's resolved addresses (SSRF)."""
    if get_settings().mode is not Mode.PRODUCTION:
        return True
    try:
        webhook.check_url(url, allow_private=False)
    except webhook.UnsafeUrl:
        return False
    return True


def previous_secret(row: EndpointRow) -> SecretStr | None:
    """The pre-rotation secret while its overlap lasts, else None."""
    if row.previous_secret_enc is None or row.previous_secret_until is None:
        return None
    return _secret(row.previous_secret_enc) if row.previous_secret_until > utcnow() else None


def _secret(enc: bytes) -> SecretStr:
    return SecretStr(crypto.decrypt(enc))


def persist_ledger(message_id: str, case_id: str) -> None:
    """Snapshot the live counters of a message into the database."""
    with session_scope() as session:
        ledger.persist(session, get_redis(), message_id, case_id)
