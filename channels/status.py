"""What operators see of delivery: breakers, dead letters, and the fan-out's timing metrics.

Shared by /metrics (`gauges`, registered by the composition root), `reunite status` and the
channel tasks (`observe_batch`). Ids, channel names and counts only: never personal data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels import ledger, reconcile, runtime
from channels.messages import MessageId, MessageKind
from channels.models import DeadLetter, PartnerEndpoint
from ops import metrics

BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_approved_at: dict[str, float] = {}


@dataclass(frozen=True)
class BreakerRow:
    """A breaker's state, named by channel and partner (0 when the breaker is a provider's)."""

    channel: str
    partner_id: int
    endpoint_id: int | None
    state: str


def breakers(client: redis.Redis, session: Session | None) -> list[BreakerRow]:
    """Every breaker Redis knows, with the partner behind each webhook endpoint."""
    names: dict[str, str] = {}
    for key in client.scan_iter(match="ch:breaker:*", count=500):
        key = key.decode() if isinstance(key, bytes) else key
        state = client.hget(key, "state")
        names[key[len("ch:breaker:") :]] = state.decode() if state else "closed"
    endpoint_ids = [int(n.split(":", 1)[1]) for n in names if n.startswith("webhook:")]
    partner_of: dict[int, int] = {}
    if endpoint_ids and session is not None:
        rows = session.execute(
            select(PartnerEndpoint.id, PartnerEndpoint.partner_id).where(
                PartnerEndpoint.id.in_(endpoint_ids)
            )
        )
        partner_of = {r.id: r.partner_id for r in rows}
    out = []
    for name, state in sorted(names.items()):
        channel, _, rest = name.partition(":")
        endpoint = int(rest) if channel == "webhook" and rest.isdigit() else None
        partner = partner_of.get(endpoint, 0) if endpoint is not None else 0
        out.append(BreakerRow(channel, partner, endpoint, state))
    return out


def dead_letters_pending(session: Session) -> dict[str, int]:
    """Dead letters not yet replayed, per channel (targets, not letters)."""
    rows = session.execute(
        select(DeadLetter.channel, DeadLetter.targets).where(DeadLetter.replayed_at.is_(None))
    )
    out: dict[str, int] = {}
    for channel, targets in rows:
        out[channel] = out.get(channel, 0) + len(targets or [])
    return out


def dead_letter_reasons(session: Session) -> dict[tuple[str, str], int]:
    """Dead-lettered targets not yet replayed, per channel and reason."""
    rows = session.execute(
        select(DeadLetter.channel, DeadLetter.reason, DeadLetter.targets).where(
            DeadLetter.replayed_at.is_(None)
        )
    )
    out: dict[tuple[str, str], int] = {}
    for channel, reason, targets in rows:
        out[(channel, reason)] = out.get((channel, reason), 0) + len(targets or [])
    return out


def gauges(session: Session, client: redis.Redis) -> Iterator[GaugeMetricFamily]:
    """Dead letters pending replay and breaker states, for /metrics."""
    letters = dead_letter_reasons(session)
    rows = breakers(client, session)
    family = GaugeMetricFamily(
        "reunite_dead_letters_pending",
        "Dead-lettered targets not replayed, per channel and reason",
        labels=["channel", "reason"],
    )
    for (channel, reason), n in letters.items():
        family.add_metric([channel, reason], n)
    yield family
    family = GaugeMetricFamily(
        "reunite_breaker_state",
        "Circuit breaker per channel and partner: 0 closed, 1 half-open, 2 open",
        labels=["channel", "partner"],
    )
    for row in rows:
        family.add_metric([row.channel, str(row.partner_id)], BREAKER_VALUES.get(row.state, 0))
    yield family
    stuck = reconcile.stuck(client)
    yield GaugeMetricFamily(
        "reunite_deliveries_overdue",
        "Message channels with targets still open past their deadline (stuck, not in progress)",
        len(stuck),
    )
    # Per channel, not per message: metric labels never carry case ids (message ids hold
    # one); `reunite status` and the console's delivery panel name the stuck messages.
    family = GaugeMetricFamily(
        "reunite_delivery_stuck_targets",
        "Targets still open past their deadline (stuck messages), per channel",
        labels=["channel"],
    )
    per_channel: dict[str, int] = {}
    for entry in stuck:
        per_channel[entry.channel] = per_channel.get(entry.channel, 0) + entry.open_targets
    for channel, n in sorted(per_channel.items()):
        family.add_metric([channel], n)
    yield family


def _approval_time(case_id: str) -> float | None:
    if case_id not in _approved_at:
        approved = runtime.ports().progress.approved_at(case_id)
        if approved is None:
            return None
        _approved_at[case_id] = approved
        while len(_approved_at) > 1024:
            _approved_at.pop(next(iter(_approved_at)))
    return _approved_at[case_id]


def observe_batch(client: redis.Redis, message_id: str, sent: int) -> None:
    """Observe approval -> first delivery and -> first wave drained, once per case, cluster-wide."""
    mid = MessageId.parse(message_id)
    if mid.kind is not MessageKind.ALERT:
        return
    first_key, last_key = f"ops:m:first:{mid.case_id}", f"ops:m:last:{mid.case_id}"
    if sent and client.set(first_key, 1, nx=True, ex=8 * 86400):
        approved = _approval_time(mid.case_id)
        if approved is not None:
            metrics.APPROVAL_TO_FIRST.observe(max(0.0, time.time() - approved))
    if client.exists(last_key) or not _drained(client, message_id):
        return
    done = runtime.ports().progress.targeting_finished(message_id)
    if done and client.set(last_key, 1, nx=True, ex=8 * 86400):
        approved = _approval_time(mid.case_id)
        if approved is not None:
            metrics.APPROVAL_TO_LAST.observe(max(0.0, time.time() - approved))


def _drained(client: redis.Redis, message_id: str) -> bool:
    counts = ledger.live_counts(client, message_id)
    targeted = sum(row["targeted"] for row in counts.values())
    final = sum(row[s] for row in counts.values() for s in ledger.FINAL)
    return targeted > 0 and final >= targeted
