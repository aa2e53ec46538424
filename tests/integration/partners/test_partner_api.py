"""Partner accounts through the admin API: keys shown once, rotation, revocation, rate limits."""

from __future__ import annotations

import pytest

from tests.factories import token
from tests.integration.partners.support import GUANGZHOU, bearer, create_partner

# Backend-independent behaviour (HTTP, Redis, workers): SQLite only, to keep the suite fast;
# the feed, webhook and erasure tests cover PostgreSQL.
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def admin(api):
    return token(api, "admin1")


def test_admin_creates_partner_and_the_key_is_shown_only_in_that_response(api, admin):
    body = create_partner(api, admin, "MapsApp", area=[GUANGZHOU], languages=["en"])
    key = body["key"]["key"]
    assert key.startswith(f"rk_{body['key']['prefix']}_")
    assert body["partner"]["area"] == [GUANGZHOU]
    listing = api.get(f"/api/v1/partners/{body['partner']['id']}/keys", headers=admin)
    assert listing.status_code == 200
    assert key.split("_", 2)[2] not in listing.text
    me = api.get("/api/v1/partner/me", headers=bearer(key))
    assert me.status_code == 200 and me.json()["name"] == "MapsApp"


def test_officer_cannot_create_partners(api):
    res = api.post(
        "/api/v1/partners",
        json={"name": "X", "kind": "app"},
        headers=token(api, "officer1"),
    )
    assert res.status_code == 403


def test_duplicate_partner_name_is_a_conflict(api, admin):
    create_partner(api, admin, "MapsApp")
    res = api.post("/api/v1/partners", json={"name": "MapsApp", "kind": "app"}, headers=admin)
    assert res.status_code == 409


def test_open_polygon_in_area_is_refused_naming_the_field(api, admin):
    res = api.post(
        "/api/v1/partners",
        json={"name": "Bad", "kind": "app", "area": [GUANGZHOU[:-1]]},
        headers=admin,
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["field"].startswith("area")


def test_rotated_key_overlaps_with_the_old_one_and_revocation_is_immediate(api, admin):
    body = create_partner(api, admin, "MapsApp")
    pid, old = body["partner"]["id"], body["key"]
    res = api.post(
        f"/api/v1/partners/{pid}/keys/{old['prefix']}/rotate",
        json={"overlap_hours": 1},
        headers=admin,
    )
    assert res.status_code == 201
    new = res.json()
    assert new["scopes"] == old["scopes"]
    for key in (old["key"], new["key"]):
        assert api.get("/api/v1/partner/me", headers=bearer(key)).status_code == 200
    revoke = api.delete(f"/api/v1/partners/{pid}/keys/{old['prefix']}", headers=admin)
    assert revoke.status_code == 204
    assert api.get("/api/v1/partner/me", headers=bearer(old["key"])).status_code == 401
    assert api.get("/api/v1/partner/me", headers=bearer(new["key"])).status_code == 200


def test_key_without_the_scope_is_forbidden(api, admin):
    body = create_partner(api, admin, "Carrier", scopes=["feeds:read"])
    res = api.get("/api/v1/partner/webhooks", headers=bearer(body["key"]["key"]))
    assert res.status_code == 403


def test_partner_over_its_rate_limit_gets_429_with_retry_after(api, admin):
    body = create_partner(api, admin, "Chatty", rate_limit_per_minute=3)
    headers = bearer(body["key"]["key"])
    codes = [api.get("/api/v1/partner/me", headers=headers).status_code for _ in range(4)]
    # A minute boundary between requests resets the window; then the 4th is still fine.
    if codes[-1] == 200:
        codes = [api.get("/api/v1/partner/me", headers=headers).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    res = api.get("/api/v1/partner/me", headers=headers)
    assert res.status_code == 429
    assert 1 <= int(res.headers["retry-after"]) <= 60


def test_profile_update_changes_area_languages_and_formats(api, admin):
    body = create_partner(api, admin, "News")
    pid = body["partner"]["id"]
    res = api.put(
        f"/api/v1/partners/{pid}/profile",
        json={"area": None, "languages": ["zh-CN"], "formats": ["atom", "cap"]},
        headers=admin,
    )
    assert res.status_code == 200
    assert res.json()["formats"] == ["atom", "cap"] and res.json()["area"] is None


def test_suspended_partner_is_locked_out_until_restored(api, admin):
    body = create_partner(api, admin, "Paused")
    pid, headers = body["partner"]["id"], bearer(body["key"]["key"])
    res = api.put(f"/api/v1/partners/{pid}/active", json={"active": False}, headers=admin)
    assert res.status_code == 200 and res.json()["active"] is False
    assert api.get("/api/v1/partner/me", headers=headers).status_code == 401
    api.put(f"/api/v1/partners/{pid}/active", json={"active": True}, headers=admin)
    assert api.get("/api/v1/partner/me", headers=headers).status_code == 200
