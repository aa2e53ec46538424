"""GET /api/v1/stats and /api/v1/stats.csv: exact figures for a seeded set of closed alerts
across two months and two agencies; filters; operators only."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from alerts.cases.models import Case
from alerts.users.models import Agency, User
from alerts.users.roles import Role
from ops.platform.db import session_scope
from tests.factories import make_user, token

# (agency, closed on, state, outcome, minutes from loss to recovery, a tip helped)
SEED = [
    ("Guangzhou PSB", "2026-10-05", "resolved", "found_safe", 60, True),
    ("Guangzhou PSB", "2026-10-09", "resolved", "returned_home", 120, False),
    ("Guangzhou PSB", "2026-10-20", "resolved", "found_deceased", 300, True),
    ("Guangzhou PSB", "2026-10-31", "cancelled", "cancelled_unfounded", None, False),
    ("Guangzhou PSB", "2026-11-01", "resolved", "rescued_from_abduction", 600, True),
    ("Guangzhou PSB", "2026-11-02", "expired", "unknown", None, False),
    ("Guangzhou PSB", "2026-11-15", "resolved", "found_with_relative", 30, True),
    ("Guangzhou PSB", "2026-11-30", "resolved", "found_safe", 45, False),
    ("Shenzhen PSB", "2026-11-10", "resolved", "found_safe", 240, False),
    # Outside the months asked for below: closed before outcomes were recorded.
    ("Shenzhen PSB", "2026-09-30", "resolved", None, None, None),
]


def _case(session, agency: str, closed: datetime, state: str, approved: bool = True, **kw):
    agency_id = session.scalar(select(Agency.id).where(Agency.name == agency))
    author = session.scalar(select(User.id).where(User.username == "officer1"))
    session.add(
        Case(
            id=str(uuid.uuid4()),
            state=state,
            agency_id=agency_id,
            created_by_id=author,
            created_at=closed - timedelta(days=1),
            approved_at=closed - timedelta(hours=20) if approved else None,
            closed_at=closed if state in ("resolved", "cancelled", "expired") else None,
            last_seen_at=closed - timedelta(days=1),
            last_seen_lat=23.1,
            last_seen_lon=113.2,
            alert_languages=["zh-CN"],
            tip_line="110",
            **kw,
        )
    )


@pytest.fixture
def seeded(api):
    make_user("ops1", Role.OPERATOR, "Guangdong PSB")
    with session_scope() as s:
        for agency, day, state, outcome, minutes, tip in SEED:
            closed = datetime.fromisoformat(day).replace(hour=23, minute=30, tzinfo=UTC)
            _case(
                s,
                agency,
                closed,
                state,
                outcome=outcome,
                recovery_seconds=None if minutes is None else minutes * 60,
                tip_contributed=tip,
            )
        # Never counted: an abandoned draft (no alert went out) and a live alert.
        _case(s, "Guangzhou PSB", datetime(2026, 11, 3, tzinfo=UTC), "cancelled", False)
        _case(s, "Guangzhou PSB", datetime(2026, 11, 4, tzinfo=UTC), "active")
    return api


def test_stats_by_month_and_agency_are_exact(seeded):
    res = seeded.get("/api/v1/stats?from=2026-10&to=2026-11", headers=token(seeded, "ops1"))
    assert res.status_code == 200, res.text
    body = res.json()
    figures = [
        (
            r["month"],
            r["agency"],
            r["cases"],
            r["recovered"],
            r["recovery_rate"],
            r["median_recovery_minutes"],
            r["found_after_tip"],
            r["tip_share"],
        )
        for r in body["rows"]
    ]
    assert figures == [
        ("2026-10", "Guangzhou PSB", 4, 2, 0.5, 90.0, 1, 0.5),
        ("2026-11", "Guangzhou PSB", 4, 3, 0.75, 45.0, 2, 0.6667),
        ("2026-11", "Shenzhen PSB", 1, 1, 1.0, 240.0, 0, 0.0),
    ]
    total = body["total"]
    assert (total["cases"], total["recovered"], total["recovery_rate"]) == (9, 6, 0.6667)
    assert (total["median_recovery_minutes"], total["found_after_tip"], total["tip_share"]) == (
        90.0,
        3,
        0.5,
    )
    assert total["outcomes"]["found_safe"] == 3 and total["outcomes"]["unknown"] == 1
    assert total["outcomes"]["cancelled_unfounded"] == 1
    assert body["rows"][0]["outcomes"]["found_deceased"] == 1


def test_the_agency_filter_and_cases_closed_before_outcomes_were_recorded(seeded):
    with session_scope() as s:
        shenzhen = s.scalar(select(Agency.id).where(Agency.name == "Shenzhen PSB"))
    res = seeded.get(f"/api/v1/stats?agency={shenzhen}", headers=token(seeded, "ops1"))
    rows = [
        (r["month"], r["cases"], r["recovered"], r["outcomes"]["unknown"])
        for r in res.json()["rows"]
    ]
    # The September case has no outcome: counted, found (resolved), listed as unknown, and
    # left out of the median for want of a recovery time.
    assert rows == [("2026-09", 1, 1, 1), ("2026-11", 1, 1, 0)]
    assert res.json()["total"]["median_recovery_minutes"] == 240.0


def test_a_month_that_is_not_one_is_refused_by_name(seeded):
    res = seeded.get("/api/v1/stats?from=2026-13", headers=token(seeded, "ops1"))
    assert res.status_code == 422
    assert [e["field"] for e in res.json()["detail"]] == ["query.from"]


def test_the_csv_has_the_header_and_one_line_per_month_and_agency(seeded):
    res = seeded.get("/api/v1/stats.csv?from=2026-10&to=2026-11", headers=token(seeded, "ops1"))
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/csv")
    assert "attachment" in res.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(res.text)))
    assert lines[0][:9] == [
        "month",
        "agency_id",
        "agency",
        "cases",
        "recovered",
        "recovery_rate",
        "median_recovery_minutes",
        "found_after_tip",
        "tip_share",
    ]
    assert "outcome_found_safe" in lines[0] and "outcome_unknown" in lines[0]
    assert [line[:1] + line[2:9] for line in lines[1:]] == [
        ["2026-10", "Guangzhou PSB", "4", "2", "0.5", "90.0", "1", "0.5"],
        ["2026-11", "Guangzhou PSB", "4", "3", "0.75", "45.0", "2", "0.6667"],
        ["2026-11", "Shenzhen PSB", "1", "1", "1.0", "240.0", "0", "0.0"],
    ]


def test_police_cannot_read_the_statistics(seeded):
    for user in ("officer1", "sup1"):
        for path in ("/api/v1/stats", "/api/v1/stats.csv"):
            assert seeded.get(path, headers=token(seeded, user)).status_code == 403, (user, path)
    assert seeded.get("/api/v1/stats").status_code == 401
    assert seeded.get("/api/v1/stats", headers=token(seeded, "admin")).status_code == 200
