"""Outcome statistics over closed alerts, by month of closure and agency.

They read only what erasure keeps (state, agency, times, outcome, recovery time and whether a
tip helped), so the figures do not change when a case's personal data is erased. SQL selects
the closed cases; months and medians are worked out here, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.cases import outcome as outcomes
from alerts.cases.lifecycle import CLOSED_STATES, CaseState
from alerts.cases.models import Case
from alerts.cases.outcome import Outcome
from alerts.stats.schemas import StatsRead, StatsRow
from alerts.users.models import Agency

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


@dataclass(frozen=True)
class Closed:
    """One closed alert, as much of it as the statistics need."""

    month: str
    agency_id: int
    agency: str
    state: str
    outcome: str | None
    recovery_seconds: int | None
    tip_contributed: bool | None

    @property
    def recovered(self) -> bool:
        return outcomes.recovered(self.state == CaseState.RESOLVED.value, self.outcome)


def month_start(month: str) -> datetime:
    """The first instant of a YYYY-MM month, in UTC."""
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def _next_month(month: str) -> datetime:
    start = month_start(month)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def closed_cases(
    session: Session,
    from_month: str | None = None,
    to_month: str | None = None,
    agency_id: int | None = None,
) -> list[Closed]:
    """The closed alerts that had gone out (approved), closed within the months."""
    query = (
        select(
            Case.closed_at,
            Case.agency_id,
            Agency.name,
            Case.state,
            Case.outcome,
            Case.recovery_seconds,
            Case.tip_contributed,
        )
        .join(Agency, Agency.id == Case.agency_id)
        .where(
            Case.state.in_([s.value for s in CLOSED_STATES]),
            Case.approved_at.is_not(None),
            Case.closed_at.is_not(None),
        )
        .order_by(Case.closed_at)
    )
    if from_month:
        query = query.where(Case.closed_at >= month_start(from_month))
    if to_month:
        query = query.where(Case.closed_at < _next_month(to_month))
    if agency_id is not None:
        query = query.where(Case.agency_id == agency_id)
    return [
        Closed(
            month=closed_at.astimezone(UTC).strftime("%Y-%m"),
            agency_id=agency,
            agency=name,
            state=state,
            outcome=outcome,
            recovery_seconds=seconds,
            tip_contributed=tip,
        )
        for closed_at, agency, name, state, outcome, seconds, tip in session.execute(query)
    ]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(
    cases: Iterable[Closed],
    month: str | None = None,
    agency_id: int | None = None,
    agency: str | None = None,
) -> StatsRow:
    """Cases, recovery rate, median time to recovery and tip share over some closed alerts."""
    cases = list(cases)
    recovered = [c for c in cases if c.recovered]
    times = [c.recovery_seconds for c in recovered if c.recovery_seconds is not None]
    after_tip = sum(1 for c in recovered if c.tip_contributed)
    by_outcome = dict.fromkeys(Outcome, 0)
    for c in cases:
        by_outcome[Outcome(c.outcome) if c.outcome else Outcome.UNKNOWN] += 1
    return StatsRow(
        month=month,
        agency_id=agency_id,
        agency=agency,
        cases=len(cases),
        recovered=len(recovered),
        recovery_rate=_ratio(len(recovered), len(cases)),
        median_recovery_minutes=round(statistics.median(times) / 60, 1) if times else None,
        found_after_tip=after_tip,
        tip_share=_ratio(after_tip, len(recovered)),
        outcomes=by_outcome,
    )


def report(
    session: Session,
    from_month: str | None = None,
    to_month: str | None = None,
    agency_id: int | None = None,
) -> StatsRead:
    """The statistics by month and agency (oldest month first, then agency name) and a total."""
    cases = closed_cases(session, from_month, to_month, agency_id)
    groups: dict[tuple[str, str, int], list[Closed]] = defaultdict(list)
    for c in cases:
        groups[(c.month, c.agency, c.agency_id)].append(c)
    rows = [
        figures(group, month, agency, name)
        for (month, name, agency), group in sorted(groups.items())
    ]
    return StatsRead(
        from_month=from_month,
        to_month=to_month,
        agency_id=agency_id,
        rows=rows,
        total=figures(cases),
    )


CSV_COLUMNS = (
    "month",
    "agency_id",
    "agency",
    "cases",
    "recovered",
    "recovery_rate",
    "median_recovery_minutes",
    "found_after_tip",
    "tip_share",
    *(f"outcome_{o.value}" for o in Outcome),
)


def to_csv(stats: StatsRead) -> str:
    """The rows as CSV (a header line, one line per month and agency; no total line)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in stats.rows:
        writer.writerow(
            [
                row.month,
                row.agency_id,
                _safe(row.agency or ""),
                row.cases,
                row.recovered,
                "" if row.recovery_rate is None else row.recovery_rate,
                "" if row.median_recovery_minutes is None else row.median_recovery_minutes,
                row.found_after_tip,
                "" if row.tip_share is None else row.tip_share,
                *(row.outcomes[o] for o in Outcome),
            ]
        )
    return out.getvalue()


def _safe(cell: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula; agency names are typed by
    # admins, still: quote them.
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
