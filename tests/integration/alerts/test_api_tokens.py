"""API tokens are listed, revocable, expiring and scoped (the security issue: "scoped and
expiring, listed and revocable").

Before: a token could not be listed or revoked short of changing the password, and every token
could do everything its user could.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from alerts.users import service as users
from alerts.users.models import ApiToken, User
from alerts.users.roles import TokenOrigin, TokenScope
from ops.platform.audit.models import AuditEntry
from ops.platform.clock import utcnow
from ops.platform.db import session_scope
from tests.factories import PASSWORD, case_payload, totp_code

TOKENS = "/api/v1/auth/tokens"


@pytest.fixture(autouse=True)
def _fresh_throttle(redis_client):
    for key in redis_client.scan_iter("console:login:*"):
        redis_client.delete(key)


def issue(api, username: str) -> tuple[str, dict[str, str]]:
    """A new token from the token endpoint: its public id and an Authorization header."""
    data = {"username": username, "password": PASSWORD}
    code = totp_code(username)
    if code is not None:
        data["totp"] = code
    res = api.post("/api/v1/auth/token", data=data)
    assert res.status_code == 200, res.text
    body = res.json()
    return body["id"], {"Authorization": f"Bearer {body['access_token']}"}


def read_token(username: str, days: int = 30) -> tuple[str, dict[str, str]]:
    """A read-scope token, as the console makes one."""
    with session_scope() as s:
        user = s.scalar(select(User).where(User.username == username))
        secret, row = users.issue_token(
            s,
            user,
            timedelta(days=days),
            name="dashboard script",
            scope=TokenScope.READ,
            via=TokenOrigin.CONSOLE,
        )
        return row.id, {"Authorization": f"Bearer {secret}"}


def test_your_tokens_are_listed_with_scope_and_origin_but_never_the_secret(api):
    token_id, officer = issue(api, "officer1")
    read_id, _ = read_token("officer1")
    issue(api, "sup1")  # someone else's token is not listed
    res = api.get(TOKENS, headers=officer)
    assert res.status_code == 200, res.text
    listed = {t["id"]: t for t in res.json()}
    assert set(listed) == {token_id, read_id}
    assert listed[token_id] | {"created_at": None, "expires_at": None} == {
        "id": token_id,
        "name": "api",
        "scope": "full",
        "state": "active",
        "created_via": "password+totp",
        "created_at": None,
        "expires_at": None,
        "revoked_at": None,
    }
    assert listed[read_id]["scope"] == "read" and listed[read_id]["created_via"] == "console"
    secret = officer["Authorization"].removeprefix("Bearer ")
    with session_scope() as s:
        hashes = s.scalars(select(ApiToken.token_hash)).all()
    assert secret not in res.text and not any(h in res.text for h in hashes)


def test_a_revoked_token_is_refused_at_once_and_the_revocation_is_audited(api):
    first_id, first = issue(api, "officer1")
    _, second = issue(api, "officer1")
    assert api.delete(f"{TOKENS}/{first_id}", headers=second).status_code == 204
    refused = api.get("/api/v1/me", headers=first)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    listed = {t["id"]: t for t in api.get(TOKENS, headers=second).json()}
    assert listed[first_id]["state"] == "revoked" and listed[first_id]["revoked_at"]
    # Revoking again changes nothing and is not audited twice.
    assert api.delete(f"{TOKENS}/{first_id}", headers=second).status_code == 204
    with session_scope() as s:
        entries = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "auth.token_revoked")
        ).all()
    assert [(e.actor, e.detail["token"]) for e in entries] == [(entries[0].actor, first_id)]
    assert entries[0].actor.startswith("user:")
    assert api.get("/api/v1/me", headers=second).status_code == 200


def test_a_token_may_revoke_itself(api):
    token_id, officer = issue(api, "officer1")
    assert api.delete(f"{TOKENS}/{token_id}", headers=officer).status_code == 204
    assert api.get(TOKENS, headers=officer).status_code == 401


def test_someone_elses_token_is_not_found_and_keeps_working(api):
    sup_id, sup = issue(api, "sup1")
    _, officer = issue(api, "officer1")
    res = api.delete(f"{TOKENS}/{sup_id}", headers=officer)
    assert res.status_code == 404
    assert api.delete(f"{TOKENS}/000000000000", headers=officer).status_code == 404
    assert api.get("/api/v1/me", headers=sup).status_code == 200


def test_a_read_token_may_look_but_never_change_anything(api):
    read_id, reader = read_token("officer1")
    _, full = issue(api, "officer1")
    assert api.get("/api/v1/me", headers=reader).json()["username"] == "officer1"
    assert api.get(TOKENS, headers=reader).status_code == 200
    case_id = api.post("/api/v1/cases", json=case_payload(), headers=full).json()["id"]
    assert api.get(f"/api/v1/cases/{case_id}", headers=reader).status_code == 200
    for method, path, body in [
        ("POST", "/api/v1/cases", case_payload()),
        ("POST", f"/api/v1/cases/{case_id}/submit", None),
        ("DELETE", f"{TOKENS}/{read_id}", None),
        ("POST", "/api/v1/auth/password", {"current_password": PASSWORD, "new_password": "x"}),
    ]:
        res = api.request(method, path, json=body, headers=reader)
        assert res.status_code == 403, (method, path, res.text)
        assert res.json()["detail"] == "token scope 'read' does not allow this request"
    assert api.get(f"/api/v1/cases/{case_id}", headers=full).json()["state"] == "draft"
    assert api.get("/api/v1/me", headers=reader).status_code == 200, "still not revoked"


def test_an_expired_token_is_refused_and_listed_as_expired(api):
    token_id, officer = issue(api, "officer1")
    _, other = issue(api, "officer1")
    with session_scope() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.id == token_id))
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert api.get("/api/v1/me", headers=officer).status_code == 401
    listed = {t["id"]: t["state"] for t in api.get(TOKENS, headers=other).json()}
    assert listed[token_id] == "expired"


def test_tokens_that_ended_long_ago_drop_off_the_list(api):
    old_id, _ = issue(api, "officer1")
    _, officer = issue(api, "officer1")
    with session_scope() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.id == old_id))
        row.expires_at = utcnow() - users.ENDED_TOKENS_LISTED - timedelta(minutes=1)
    assert old_id not in {t["id"] for t in api.get(TOKENS, headers=officer).json()}


def test_a_password_change_revokes_every_token_and_they_stay_listed_as_revoked(api):
    first_id, first = issue(api, "officer1")
    read_id, _ = read_token("officer1")
    new = "amber lantern 42 river"
    ok = api.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": new},
        headers=first,
    )
    assert ok.status_code == 204, ok.text
    assert api.get("/api/v1/me", headers=first).status_code == 401
    res = api.post("/api/v1/auth/token", data={"username": "officer1", "password": new})
    fresh = {"Authorization": f"Bearer {res.json()['access_token']}"}
    listed = {t["id"]: t["state"] for t in api.get(TOKENS, headers=fresh).json()}
    assert listed[first_id] == listed[read_id] == "revoked"
