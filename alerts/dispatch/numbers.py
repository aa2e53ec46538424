"""The delivery ledger's words on /metrics, with the console's and the API's meaning.

`reunite_alert_targets{channel, partner, count}` sums the ledger over every message of the
cases alerting now (state active), computed at scrape time like the other gauges:
targeted (devices, partner endpoints, topics chosen), sent (accepted by the provider), failed
(refused for good: the ledger's failed, dead and dead_lettered), retrying, delivered (a
carrier receipt; SMS only) and withdrawn. Labels carry a channel and a partner id, never a
case or a person.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from channels import ledger
from channels.models import Message

COUNTS = ("targeted", "sent", "failed", "retrying", "delivered", "withdrawn")


def active_totals(session: Session, client: redis.Redis) -> dict[tuple[str, int], dict[str, int]]:
    """{(channel, partner id): {count: n}} over the messages of active cases."""
    ids = session.scalars(
        select(Message.id)
        .join(Case, Case.id == Message.case_id)
        .where(Case.state == CaseState.ACTIVE.value)
    ).all()
    out: dict[tuple[str, int], dict[str, int]] = {}
    for message_id in ids:
        rows = ledger.live_counts(client, message_id) or ledger.stored_counts(session, message_id)
        for key, stats in rows.items():
            acc = out.setdefault(key, dict.fromkeys(COUNTS, 0))
            for stat, n in stats.items():
                acc["failed" if stat in ("dead", "dead_lettered") else stat] += n
    return out


def gauges(session: Session, client: Any) -> Iterator[GaugeMetricFamily]:
    """The ledger of active cases, per channel, partner and count, for /metrics."""
    family = GaugeMetricFamily(
        "reunite_alert_targets",
        "Targets of the active cases' messages by ledger count: targeted (chosen), sent "
        "(accepted by the provider), failed (refused for good, dead or dead-lettered), "
        "retrying, delivered (carrier receipt, SMS only), withdrawn",
        labels=["channel", "partner", "count"],
    )
    for (channel, partner), stats in sorted(active_totals(session, client).items()):
        for count in COUNTS:
            family.add_metric([channel, str(partner), count], stats[count])
    yield family
