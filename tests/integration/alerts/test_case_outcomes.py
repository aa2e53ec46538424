"""Closure records how a case ended (outcome, time from loss to recovery, whether a tip
helped) through the API; unknown outcomes are refused by field name; expiry says "unknown";
erasure keeps all three, so the outcome statistics survive it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from alerts.cases import service as cases
from alerts.cases.models import Case
from alerts.privacy import service as privacy
from alerts.stats import service as stats
from alerts.tips.models import Tip
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import case_payload, token


def active_case(api, **overrides) -> str:
    officer = token(api, "officer1")
    res = api.post("/api/v1/cases", json=case_payload(**overrides), headers=officer)
    assert res.status_code == 201, res.text
    case_id = res.json()["id"]
    assert api.post(f"/api/v1/cases/{case_id}/submit", headers=officer).status_code == 200
    approved = api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1"))
    assert approved.status_code == 200, approved.text
    return case_id


def add_tip(case_id: str, state: str = "new") -> None:
    with session_scope() as s:
        s.add(Tip(case_id=case_id, source="public", text="seen at the metro", state=state))


def stored(case_id: str) -> Case:
    with session_scope() as s:
        case = s.get(Case, case_id)
        s.expunge(case)
        return case


def test_resolve_stores_the_outcome_time_from_loss_and_a_credible_tip(api):
    case_id = active_case(api)
    add_tip(case_id, "credible")
    res = api.post(
        f"/api/v1/cases/{case_id}/resolve",
        json={"reason": "With her aunt", "outcome": "found_with_relative"},
        headers=token(api, "officer1"),
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["outcome"], body["tip_contributed"]) == ("found_with_relative", True)
    case = stored(case_id)
    assert case.outcome == "found_with_relative" and case.tip_contributed is True
    expected = int((case.closed_at - case.last_seen_at).total_seconds())
    assert case.recovery_seconds == expected == body["recovery_seconds"] > 0


def test_resolve_without_a_body_defaults_to_found_safe_and_only_a_dismissed_tip_does_not_count(
    api,
):
    case_id = active_case(api)
    add_tip(case_id, "dismissed")
    res = api.post(f"/api/v1/cases/{case_id}/resolve", headers=token(api, "officer1"))
    assert res.status_code == 200, res.text
    assert (res.json()["outcome"], res.json()["tip_contributed"]) == ("found_safe", False)


def test_the_officer_can_say_a_tip_helped(api):
    case_id = active_case(api)
    res = api.post(
        f"/api/v1/cases/{case_id}/resolve",
        json={"outcome": "returned_home", "tip_contributed": True},
        headers=token(api, "officer1"),
    )
    assert (res.json()["outcome"], res.json()["tip_contributed"]) == ("returned_home", True)


def test_time_from_loss_counts_from_the_first_last_seen_time_after_a_sighting_moved_it(api):
    case_id = active_case(api)
    with session_scope() as s:
        case = s.get(Case, case_id)
        first = case.last_seen_at
        case.origin_at = first
        case.last_seen_at = first + timedelta(minutes=30)
    api.post(f"/api/v1/cases/{case_id}/resolve", headers=token(api, "officer1"))
    case = stored(case_id)
    assert case.recovery_seconds == int((case.closed_at - first).total_seconds())


def test_cancel_stores_unfounded_or_defaults_to_other(api):
    officer = token(api, "officer1")
    a, b = active_case(api), active_case(api)
    res = api.post(
        f"/api/v1/cases/{a}/cancel",
        json={"reason": "The child was never missing", "outcome": "cancelled_unfounded"},
        headers=officer,
    )
    assert res.status_code == 200, res.text
    assert res.json()["outcome"] == "cancelled_unfounded"
    assert res.json()["recovery_seconds"] is None
    res = api.post(f"/api/v1/cases/{b}/cancel", json={"reason": "duplicate"}, headers=officer)
    assert res.json()["outcome"] == "other"


def test_an_outcome_not_offered_is_refused_naming_the_field_and_the_case_stays_open(api):
    officer = token(api, "officer1")
    case_id = active_case(api)
    for outcome in ("abducted_by_aliens", "cancelled_unfounded", "unknown"):
        res = api.post(
            f"/api/v1/cases/{case_id}/resolve", json={"outcome": outcome}, headers=officer
        )
        assert res.status_code == 422, outcome
        assert [e["field"] for e in res.json()["detail"]] == ["outcome"]
    res = api.post(
        f"/api/v1/cases/{case_id}/cancel",
        json={"reason": "duplicate", "outcome": "found_safe"},
        headers=officer,
    )
    assert res.status_code == 422
    assert [e["field"] for e in res.json()["detail"]] == ["outcome"]
    assert stored(case_id).state == "active" and stored(case_id).outcome is None


def test_an_alert_that_expires_by_time_has_outcome_unknown(api):
    case_id = active_case(api)
    settings = get_settings()
    with session_scope() as s:
        s.get(Case, case_id).approved_at = utcnow() - timedelta(
            hours=settings.alert_lifetime_hours + 1
        )
    with session_scope() as s:
        assert cases.expire_due(s, settings) == 1
    case = stored(case_id)
    assert (case.state, case.outcome, case.recovery_seconds) == ("expired", "unknown", None)


def test_erasure_keeps_the_outcome_and_the_statistics(api):
    found = active_case(api)
    add_tip(found, "credible")
    api.post(
        f"/api/v1/cases/{found}/resolve",
        json={"reason": "Found by a shopkeeper", "outcome": "found_safe"},
        headers=token(api, "officer1"),
    )
    unfounded = active_case(api)
    api.post(
        f"/api/v1/cases/{unfounded}/cancel",
        json={"reason": "Never missing", "outcome": "cancelled_unfounded"},
        headers=token(api, "officer1"),
    )
    before = stored(found)
    with session_scope() as s:
        report_before = stats.report(s)
    with session_scope() as s:
        privacy.erase(s, found, get_settings())
        privacy.erase(s, unfounded, get_settings())
    after = stored(found)
    assert after.details is None and after.close_reason is None, "erasure did run"
    with session_scope() as s:
        assert s.scalar(select(Tip.text).where(Tip.case_id == found)) is None
    assert (after.outcome, after.recovery_seconds, after.tip_contributed) == (
        "found_safe",
        before.recovery_seconds,
        True,
    )
    assert stored(unfounded).outcome == "cancelled_unfounded"
    with session_scope() as s:
        report_after = stats.report(s)
    assert report_after == report_before
    assert (report_after.total.cases, report_after.total.recovered) == (2, 1)
    assert report_after.total.found_after_tip == 1
