"""The case API over real databases (SQLite and, where configured, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ops.platform.audit.models import AuditEntry
from ops.platform.db import session_scope
from ops.platform.outbox.models import OutboxMessage
from tests.factories import case_payload, token


def submitted_case(api) -> str:
    officer = token(api, "officer1")
    res = api.post("/api/v1/cases", json=case_payload(), headers=officer)
    assert res.status_code == 201, res.text
    case_id = res.json()["id"]
    assert api.post(f"/api/v1/cases/{case_id}/submit", headers=officer).status_code == 200
    return case_id


def test_officer_creates_draft_with_all_details(api):
    res = api.post("/api/v1/cases", json=case_payload(), headers=token(api, "officer1"))
    assert res.status_code == 201
    body = res.json()
    assert body["state"] == "draft"
    assert body["child"]["clothing"] == "red jacket, blue jeans"
    assert body["last_seen"]["lat"] == pytest.approx(23.1291)
    assert body["vehicle"]["plate"] == "粤A12345"
    assert api.get(f"/api/v1/cases/{body['id']}", headers=token(api, "sup1")).json() == body


def test_bad_coordinates_get_422_naming_the_field_without_echoing_input(api):
    payload = case_payload()
    payload["last_seen"]["lat"] = 123.0
    res = api.post("/api/v1/cases", json=payload, headers=token(api, "officer1"))
    assert res.status_code == 422
    assert [e["field"] for e in res.json()["detail"]] == ["last_seen.lat"]
    assert "Lin Xiaoyu" not in res.text


def test_last_seen_older_than_configured_limit_is_refused(api):
    payload = case_payload()
    payload["last_seen"]["at"] = "2026-01-01T00:00:00+08:00"
    res = api.post("/api/v1/cases", json=payload, headers=token(api, "officer1"))
    assert res.status_code == 422
    assert res.json()["detail"][0]["field"] == "last_seen.at"


def test_requests_without_a_valid_token_are_refused(api):
    assert api.post("/api/v1/cases", json=case_payload()).status_code == 401
    bad = {"Authorization": "Bearer rut_not-a-token"}
    assert api.get("/api/v1/cases", headers=bad).status_code == 401


def test_wrong_password_is_401_and_audited(api):
    res = api.post("/api/v1/auth/token", data={"username": "officer1", "password": "nope-nope"})
    assert res.status_code == 401
    from ops.platform.audit.models import AuditEntry

    with session_scope() as s:
        actions = s.scalars(select(AuditEntry.action)).all()
    assert "auth.login_failed" in actions


def test_supervisor_approves_and_outbox_row_is_written_in_the_same_commit(api):
    case_id = submitted_case(api)
    res = api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1"))
    assert res.status_code == 200, res.text
    assert res.json()["state"] == "active"
    with session_scope() as s:
        rows = s.scalars(select(OutboxMessage)).all()
    assert [r.args for r in rows] == [[case_id, "approved"]]


def test_officer_cannot_approve_any_case(api):
    case_id = submitted_case(api)
    res = api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "officer1"))
    assert res.status_code == 403
    assert api.get(f"/api/v1/cases/{case_id}", headers=token(api, "sup1")).json()["state"] == (
        "submitted"
    )


def test_supervisor_cannot_approve_own_submission_by_default(api):
    sup = token(api, "sup1")
    case_id = api.post("/api/v1/cases", json=case_payload(), headers=sup).json()["id"]
    api.post(f"/api/v1/cases/{case_id}/submit", headers=sup)
    res = api.post(f"/api/v1/cases/{case_id}/approve", headers=sup)
    assert res.status_code == 403
    assert "two-person rule" in res.json()["detail"]


def test_agency_setting_allows_audited_self_approval_for_senior_ranks(api):
    admin = token(api, "admin")
    agencies = {a["name"]: a["id"] for a in api.get("/api/v1/agencies", headers=admin).json()}
    res = api.put(
        f"/api/v1/agencies/{agencies['Guangzhou PSB']}/self-approval",
        json={"self_approval_min_rank": "inspector", "reason": "county-level direct publishing"},
        headers=admin,
    )
    assert res.status_code == 200 and res.json()["self_approval_min_rank"] == "inspector"
    sup = token(api, "sup1")
    case_id = api.post("/api/v1/cases", json=case_payload(), headers=sup).json()["id"]
    api.post(f"/api/v1/cases/{case_id}/submit", headers=sup)
    assert api.post(f"/api/v1/cases/{case_id}/approve", headers=sup).json()["state"] == "active"
    from ops.platform.audit.models import AuditEntry

    with session_scope() as s:
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert any(e.action == "agency.self_approval_changed" for e in entries)
    approval = [e for e in entries if e.action == "case.approved"][-1]
    assert approval.detail["self_approved"] is True


def test_parent_agency_supervisor_may_approve_but_sibling_may_not(api):
    case_id = submitted_case(api)
    # A sibling agency cannot even see the case.
    assert (
        api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "szsup")).status_code == 404
    )
    res = api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "provsup"))
    assert res.json()["state"] == "active"


def test_reject_needs_a_reason_and_returns_case_to_draft(api):
    case_id = submitted_case(api)
    sup = token(api, "sup1")
    res = api.post(f"/api/v1/cases/{case_id}/reject", json={"reason": ""}, headers=sup)
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "reason"
    res = api.post(
        f"/api/v1/cases/{case_id}/reject", json={"reason": "photo is of another child"}, headers=sup
    )
    assert res.json()["state"] == "draft"
    assert res.json()["rejection_reason"] == "photo is of another child"


def test_illegal_transition_is_409_naming_current_state(api):
    officer = token(api, "officer1")
    case_id = api.post("/api/v1/cases", json=case_payload(), headers=officer).json()["id"]
    res = api.post(f"/api/v1/cases/{case_id}/resolve", headers=officer)
    assert res.status_code == 409
    assert "draft" in res.json()["detail"]


def outbox_kinds() -> list[str]:
    with session_scope() as s:
        rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [r.args[1] for r in rows if len(r.args) > 1]


def test_active_case_text_change_waits_for_a_second_supervisor_then_goes_out(api):
    case_id = submitted_case(api)
    api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1"))
    officer = token(api, "officer1")
    res = api.patch(f"/api/v1/cases/{case_id}", json={"tip_line": "+86 20 12345"}, headers=officer)
    # One officer alone cannot change what the public receives.
    assert res.status_code == 202, res.text
    change = res.json()
    assert (change["state"], change["kind"]) == ("pending", "details")
    assert api.get(f"/api/v1/cases/{case_id}", headers=officer).json()["tip_line"] != "+86 20 12345"
    assert "updated" not in outbox_kinds()

    approved = api.post(
        f"/api/v1/cases/{case_id}/changes/{change['id']}/approve", headers=token(api, "sup1")
    )
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert api.get(f"/api/v1/cases/{case_id}", headers=officer).json()["tip_line"] == (
        "+86 20 12345"
    )
    assert outbox_kinds()[-1] == "updated"
    with session_scope() as s:
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    live = [a for a in actions if a.startswith("case.change") or a == "case.updated"]
    assert live[-3:] == ["case.change_proposed", "case.change_approved", "case.updated"]


def test_the_proposer_cannot_approve_their_own_live_change(api):
    case_id = submitted_case(api)
    sup = token(api, "sup1")
    api.post(f"/api/v1/cases/{case_id}/approve", headers=sup)
    change = api.patch(f"/api/v1/cases/{case_id}", json={"tip_line": "120"}, headers=sup).json()
    res = api.post(f"/api/v1/cases/{case_id}/changes/{change['id']}/approve", headers=sup)
    assert res.status_code == 403 and "two-person" in res.text
    rejected = api.post(
        f"/api/v1/cases/{case_id}/changes/{change['id']}/reject", headers=token(api, "provsup")
    )
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    assert api.get(f"/api/v1/cases/{case_id}", headers=sup).json()["tip_line"] != "120"


def test_a_sighting_far_from_the_last_approved_place_needs_a_second_supervisor(api):
    case_id = submitted_case(api)
    api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1"))
    officer = token(api, "officer1")
    case = api.get(f"/api/v1/cases/{case_id}", headers=officer).json()
    lat, lon = case["last_seen"]["lat"], case["last_seen"]["lon"]
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    near = api.post(
        f"/api/v1/cases/{case_id}/sightings",
        json={"at": at, "lat": lat + 0.1, "lon": lon},  # ~11 km: one officer may
        headers=officer,
    )
    assert near.status_code == 201, near.text
    far = api.post(
        f"/api/v1/cases/{case_id}/sightings",
        json={"at": at, "lat": 39.9, "lon": 116.4},  # ~1,900 km away: Beijing
        headers=officer,
    )
    assert far.status_code == 202 and far.json()["kind"] == "sighting", far.text
    assert api.get(f"/api/v1/cases/{case_id}", headers=officer).json()["last_seen"]["lat"] != 39.9
    change_id = far.json()["id"]
    ok = api.post(
        f"/api/v1/cases/{case_id}/changes/{change_id}/approve", headers=token(api, "sup1")
    )
    assert ok.status_code == 200, ok.text
    assert api.get(f"/api/v1/cases/{case_id}", headers=officer).json()["last_seen"]["lat"] == 39.9


def test_narrowing_a_live_area_is_one_supervisor_widening_it_needs_a_second(api):
    case_id = submitted_case(api)
    api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1"))
    prov = token(api, "provsup")

    def radii() -> list[float]:
        rows = api.get(f"/api/v1/cases/{case_id}/waves", headers=prov).json()
        return [w["radius_km"] for w in rows if w["status"] != "cancelled"]

    narrowed = api.put(
        f"/api/v1/cases/{case_id}/geo-override",
        json={"cap_km": 250, "reason": "coastline"},
        headers=prov,
    )
    assert narrowed.status_code == 200, narrowed.text
    assert max(radii()) == 250

    # Back to 500 km: reaches people the approved plan does not. One supervisor cannot.
    wider = api.put(
        f"/api/v1/cases/{case_id}/geo-override",
        json={"cap_km": 500, "reason": "may have crossed the province"},
        headers=prov,
    )
    assert wider.status_code == 202 and wider.json()["kind"] == "area", wider.text
    assert max(radii()) == 250, "nothing widened before the second person"
    drawn = api.put(
        f"/api/v1/cases/{case_id}/geo-override",
        json={"vertices": [[23, 113], [24, 113], [24, 114]], "cap_km": 100, "reason": "drawn"},
        headers=prov,
    )
    assert drawn.status_code == 202, "a drawn area replacing the radius plan is checked too"
    own = api.post(f"/api/v1/cases/{case_id}/changes/{wider.json()['id']}/approve", headers=prov)
    assert own.status_code == 403

    ok = api.post(
        f"/api/v1/cases/{case_id}/changes/{wider.json()['id']}/approve", headers=token(api, "sup1")
    )
    assert ok.status_code == 200, ok.text
    assert max(radii()) == 500
    with session_scope() as s:
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    assert actions[-2:] == ["case.change_approved", "case.geo_override_set"]


def test_a_drawn_area_beyond_the_rule_ceiling_is_refused_naming_the_vertex(api):
    """Before, a manual area could cover the whole country: no ceiling applied to it."""
    case_id = submitted_case(api)
    sup = token(api, "sup1")
    lat, lon = case_payload()["last_seen"]["lat"], case_payload()["last_seen"]["lon"]
    far = [[lat, lon - 0.5], [lat + 0.5, lon + 0.5], [39.9, 116.4]]  # the last one: Beijing
    res = api.put(
        f"/api/v1/cases/{case_id}/geo-override",
        json={"vertices": far, "reason": "whole country"},
        headers=sup,
    )
    assert res.status_code == 422, res.text
    [error] = res.json()["detail"]
    assert error["field"] == "vertices[2]" and "500 km" in error["message"]
    near = [[lat - 0.3, lon - 0.3], [lat + 0.3, lon - 0.3], [lat, lon + 0.4]]
    ok = api.put(
        f"/api/v1/cases/{case_id}/geo-override",
        json={"vertices": near, "reason": "the river delta"},
        headers=sup,
    )
    assert ok.status_code == 200, ok.text


def test_active_case_location_changes_only_through_a_sighting(api):
    case_id = submitted_case(api)
    api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1"))
    res = api.patch(
        f"/api/v1/cases/{case_id}",
        json={"last_seen": case_payload()["last_seen"]},
        headers=token(api, "officer1"),
    )
    assert res.status_code == 409 and "sighting" in res.json()["detail"]


def test_closed_cases_cannot_be_edited(api):
    officer = token(api, "officer1")
    case_id = api.post("/api/v1/cases", json=case_payload(), headers=officer).json()["id"]
    api.post(f"/api/v1/cases/{case_id}/cancel", json={"reason": "duplicate"}, headers=officer)
    res = api.patch(f"/api/v1/cases/{case_id}", json={"tip_line": "+86 20 1"}, headers=officer)
    assert res.status_code == 409 and "cancelled" in res.json()["detail"]


def test_draft_update_changes_only_given_fields(api):
    officer = token(api, "officer1")
    case_id = api.post("/api/v1/cases", json=case_payload(), headers=officer).json()["id"]
    res = api.patch(f"/api/v1/cases/{case_id}", json={"tip_line": "+86 20 12345"}, headers=officer)
    assert res.status_code == 200
    assert res.json()["tip_line"] == "+86 20 12345"
    assert res.json()["child"]["name"] == "Lin Xiaoyu"
    assert res.json()["version"] == 2


def test_resolve_and_cancel_close_the_case_and_queue_closure(api):
    sup = token(api, "sup1")
    officer = token(api, "officer1")
    a = submitted_case(api)
    b = submitted_case(api)
    api.post(f"/api/v1/cases/{a}/approve", headers=sup)
    api.post(f"/api/v1/cases/{b}/approve", headers=sup)
    assert api.post(f"/api/v1/cases/{a}/resolve", headers=officer).json()["state"] == "resolved"
    res = api.post(f"/api/v1/cases/{b}/cancel", json={"reason": "duplicate"}, headers=officer)
    assert res.json()["state"] == "cancelled" and res.json()["closed_at"]
    with session_scope() as s:
        kinds = sorted(r.args[1] for r in s.scalars(select(OutboxMessage)))
    assert kinds == ["approved", "approved", "cancelled", "resolved"]


def test_list_filters_by_state_and_paginates(api):
    officer = token(api, "officer1")
    ids = [
        api.post("/api/v1/cases", json=case_payload(), headers=officer).json()["id"]
        for _ in range(3)
    ]
    api.post(f"/api/v1/cases/{ids[0]}/submit", headers=officer)
    page = api.get("/api/v1/cases?state=draft&limit=1&offset=1", headers=officer).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    assert page["items"][0]["state"] == "draft"
    res = api.get("/api/v1/cases?state=lost", headers=officer)
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "query.state"


def test_readyz_reports_database_redis_broker_and_is_not_ready_without_workers(api):
    res = api.get("/readyz")
    assert res.status_code == 503, "no worker beat: alerts would queue but never go out"
    checks = res.json()["checks"]
    assert (checks["database"], checks["redis"], checks["broker"]) == ("ok", "ok", "ok")
    assert checks["workers"].startswith("down: no worker seen")


def test_sighting_before_the_last_seen_time_is_422_naming_at_and_moves_nothing(api):
    case_id = submitted_case(api)
    assert (
        api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1")).status_code == 200
    )
    officer = token(api, "officer1")
    with session_scope() as s:
        rows_before = len(s.scalars(select(OutboxMessage)).all())
    five_hours_earlier = (datetime.now(UTC) - timedelta(hours=5, minutes=30)).isoformat()
    res = api.post(
        f"/api/v1/cases/{case_id}/sightings",
        json={"at": five_hours_earlier, "lat": 39.9, "lon": 116.4},
        headers=officer,
    )
    assert res.status_code == 422, res.text
    assert [e["field"] for e in res.json()["detail"]] == ["at"]
    case = api.get(f"/api/v1/cases/{case_id}", headers=officer).json()
    assert case["last_seen"]["lat"] != 39.9
    with session_scope() as s:
        assert len(s.scalars(select(OutboxMessage)).all()) == rows_before, "nothing was queued"
    later = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    res = api.post(
        f"/api/v1/cases/{case_id}/sightings",
        json={"at": later, "lat": 23.2, "lon": 113.3},
        headers=officer,
    )
    assert res.status_code == 201, res.text
