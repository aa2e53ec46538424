"""A case's reach report, computed from the delivery ledger, the wave engine's claim records
and partners' own reports.

What each figure measures (the ledger keeps no time per target):
- counts: the ledger counters per message, channel and partner (live in Redis, else the
  database snapshot), as on the case page;
- seconds to 50/90/99 %: from the message's creation to the second in which the ledger's
  per-second histogram of `sent` (channels.ledger.timeline) reached that share of the devices
  targeted so far on APNs, FCM and SMS;
- cells: devices claimed per resolution-5 shard cell (geo.waves.claimed_by_shard, the record
  each shard task keeps of its claim) and, of those, the ones a device channel marks sent.
  Cells below the k floor are left out; the claim records last 14 days.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

import h3
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.reach import schemas
from alerts.reach.models import PartnerReach
from channels import ledger
from channels.models import Message
from geo.waves import service as waves
from ops.platform.clock import utcnow
from ops.platform.config import Settings
from ops.platform.redis_client import get_redis

DEVICE_CHANNELS = ("apns", "fcm", "sms")
SHARES = (50, 90, 99)
STATES_BATCH = 5000


class UnknownMessage(LookupError):
    """No message with this id."""


def message_of(session: Session, message_id: str) -> Message:
    """The message a partner reports on (its CAP identifier `reunite:<id>` also names it)."""
    message = session.get(Message, message_id.removeprefix("reunite:"))
    if message is None:
        raise UnknownMessage(message_id)
    return message


def record_partner_reach(
    session: Session, partner_id: int, message: Message, body: schemas.PartnerReachCreate
) -> PartnerReach:
    """Store a partner's report for a message, replacing its previous one (idempotent)."""
    row = session.get(PartnerReach, (message.id, partner_id))
    if row is None:
        row = PartnerReach(message_id=message.id, partner_id=partner_id, case_id=message.case_id)
        session.add(row)
    row.impressions = body.impressions
    row.opened = body.opened
    row.reported_at = body.reported_at
    row.received_at = utcnow()
    session.flush()
    return row


def seconds_to(
    started: float, buckets: Iterable[tuple[int, int]], targeted: int
) -> dict[int, int | None]:
    """Seconds from `started` to the second cumulative sent reached each share of `targeted`."""
    out: dict[int, int | None] = dict.fromkeys(SHARES)
    if targeted <= 0:
        return out
    total = 0
    for second, n in buckets:
        total += n
        for share in SHARES:
            if out[share] is None and total >= math.ceil(targeted * share / 100):
                out[share] = max(0, second - math.floor(started))
    return out


def _merge(series: Iterable[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    acc: dict[int, int] = defaultdict(int)
    for points in series:
        for second, n in points:
            acc[second] += n
    return sorted(acc.items())


def _wave(session: Session, r, m: Message) -> tuple[schemas.WaveReach, dict[str, list]]:
    rows = ledger.live_counts(r, m.id) or ledger.stored_counts(session, m.id)
    counts = [
        schemas.ReachCount(
            channel=channel,
            partner_id=partner or None,
            targeted=s["targeted"],
            sent=s["sent"],
            delivered=s["delivered"],
            failed=s["failed"] + s["dead"] + s["dead_lettered"],
        )
        for (channel, partner), s in sorted(rows.items())
    ]
    devices = [c for c in counts if c.channel in DEVICE_CHANNELS]
    targeted = sum(c.targeted for c in devices)
    series = {
        stat: _merge(ledger.timeline(r, m.id, ch, stat) for ch in DEVICE_CHANNELS)
        for stat in ledger.TIMED
    }
    times = seconds_to(m.created_at.timestamp(), series["sent"], targeted)
    reports = session.scalars(
        select(PartnerReach)
        .where(PartnerReach.message_id == m.id)
        .order_by(PartnerReach.partner_id)
    ).all()
    return (
        schemas.WaveReach(
            message_id=m.id,
            kind=m.kind,
            wave=m.wave + 1,  # numbered from 1, as everywhere people read it
            started_at=m.created_at,
            devices_targeted=targeted,
            devices_sent=sum(c.sent for c in devices),
            devices_delivered=sum(c.delivered for c in devices),
            seconds_to_50=times[50],
            seconds_to_90=times[90],
            seconds_to_99=times[99],
            counts=counts,
            partner_reports=[schemas.PartnerReachRead.model_validate(p) for p in reports],
        ),
        series,
    )


def _sent_among(r, message_ids: list[str], ids: np.ndarray) -> int:
    """How many of these devices a device channel of any of the messages marks sent."""
    done = np.zeros(len(ids), dtype=bool)
    for message_id in message_ids:
        for channel in DEVICE_CHANNELS:
            book = ledger.Ledger(r, message_id, channel)
            for start in range(0, len(ids), STATES_BATCH):
                part = ids[start : start + STATES_BATCH].tolist()
                states = np.array([int(s) for s in book.states(part)], dtype=np.int8)
                done[start : start + len(part)] |= states == int(ledger.State.SENT)
    return int(done.sum())


def cells(session: Session, case_id: str, k_floor: int) -> tuple[list[schemas.CellReach], int]:
    """Devices targeted (and sent) per resolution-5 cell over the case's waves; cells below the
    floor are counted but not listed. A device is claimed once per case, so waves add up."""
    r = get_redis()
    per_cell: dict[int, list[tuple[str | None, np.ndarray]]] = defaultdict(list)
    for wave in waves.waves_of(session, case_id):
        for cell, ids in waves.claimed_by_shard(case_id, wave.id).items():
            per_cell[cell].append((wave.message_id, ids))
    shown: list[schemas.CellReach] = []
    suppressed = 0
    for cell, claims in sorted(per_cell.items()):
        targeted = sum(len(ids) for _, ids in claims)
        if targeted < k_floor:
            suppressed += 1
            continue
        sent = sum(_sent_among(r, [mid] if mid else [], ids) for mid, ids in claims)
        shown.append(
            schemas.CellReach(
                cell=h3.int_to_str(cell),
                targeted=targeted,
                sent=sent if sent == 0 or sent >= k_floor else None,
            )
        )
    return shown, suppressed


def report(session: Session, case_id: str, settings: Settings) -> schemas.ReachReport:
    """The case's reach report (the caller has checked the case is the user's to see)."""
    r = get_redis()
    msgs = session.scalars(
        select(Message).where(Message.case_id == case_id).order_by(Message.created_at, Message.id)
    ).all()
    out: list[schemas.WaveReach] = []
    sent_series: list[list[tuple[int, int]]] = []
    delivered_series: list[list[tuple[int, int]]] = []
    for m in msgs:
        wave, series = _wave(session, r, m)
        out.append(wave)
        sent_series.append(series["sent"])
        delivered_series.append(series["delivered"])
    shown, suppressed = cells(session, case_id, settings.reach_k_floor)
    return schemas.ReachReport(
        case_id=case_id,
        generated_at=utcnow(),
        k_floor=settings.reach_k_floor,
        waves=out,
        cells=shown,
        cells_suppressed=suppressed,
        timeline=timeline(_merge(sent_series), _merge(delivered_series)),
    )


def timeline(
    sent: list[tuple[int, int]], delivered: list[tuple[int, int]]
) -> list[schemas.TimelinePoint]:
    """Running totals of sent and delivered at every second either changed."""
    steps: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for second, n in sent:
        steps[second][0] += n
    for second, n in delivered:
        steps[second][1] += n
    out = []
    s_total = d_total = 0
    for second in sorted(steps):
        s_total += steps[second][0]
        d_total += steps[second][1]
        out.append(
            schemas.TimelinePoint(
                at=datetime.fromtimestamp(second, UTC), sent=s_total, delivered=d_total
            )
        )
    return out
