"""The console's account pages: API tokens made in a session that passed the second factor
(shown once, scoped, listed, revocable) and the password change (TestClient over the real app,
real Redis, SQLite and PostgreSQL).

Before: a script's token needed the password and a fresh TOTP code every 12 hours, could do
everything its user could, and could only be stopped by changing the password, which the
console offered no page for.
"""

from __future__ import annotations

import re
import time

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import select

from ops.platform.audit.models import AuditEntry
from ops.platform.db import session_scope
from tests.factories import PASSWORD, case_payload
from tests.integration.console.conftest import csrf_of, login, login_with_totp

TOKENS = "/console/account/tokens"
PASSWORD_PAGE = "/console/account/password"
NEW_PASSWORD = "amber lantern 42 river"
SECRET = re.compile(r'id="token-secret" value="(rut_[^"]+)"')


def english(client: TestClient) -> None:
    client.post(
        "/console/language",
        data={"language": "en", "next": TOKENS, "csrf_token": csrf_of(client.get(TOKENS).text)},
    )


def make_token(client: TestClient, **fields):
    """Post the new-token form (name, scope, expires_in_days) with the page's CSRF token."""
    data = {"name": "nightly report", "scope": "full", "expires_in_days": "30", **fields}
    data["csrf_token"] = csrf_of(client.get(TOKENS).text)
    return client.post(TOKENS, data=data)


def secret_of(res) -> str:
    match = SECRET.search(res.text)
    assert match, "the new token's secret is on the page"
    return match.group(1)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def token_id_in(html: str, name: str) -> str:
    match = re.search(r'<tr id="token-([0-9a-f]+)"[^>]*><td>' + re.escape(name) + " ", html)
    assert match, f"token {name!r} is listed"
    return match.group(1)


def actions(name: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == name)))


def test_the_navigation_links_both_account_pages_for_every_user(console):
    login(console, "officer1")
    page = console.get("/console/")
    assert 'href="/console/account/tokens"' in page.text
    assert 'href="/console/account/password"' in page.text
    assert "API 令牌" in page.text and "修改密码" in page.text


def test_a_token_made_in_the_console_works_against_the_api_and_is_shown_only_once(console):
    login_with_totp(console, "sup1")
    res = make_token(console)
    assert res.status_code == 201, res.text
    assert res.headers["Cache-Control"] == "no-store"
    assert "只显示这一次" in res.text, "the page warns it will not be shown again"
    secret = secret_of(res)
    me = console.get("/api/v1/me", headers=bearer(secret))
    assert me.status_code == 200 and me.json()["username"] == "sup1"
    created = console.post("/api/v1/cases", json=case_payload(), headers=bearer(secret))
    assert created.status_code == 201, created.text
    again = console.get(TOKENS)
    assert secret not in again.text
    token_id = token_id_in(again.text, "nightly report")
    listed = {t["id"]: t for t in console.get("/api/v1/auth/tokens", headers=bearer(secret)).json()}
    assert listed[token_id]["created_via"] == "console"
    assert listed[token_id]["name"] == "nightly report" and listed[token_id]["scope"] == "full"
    (issued,) = [e for e in actions("auth.token_issued") if e.detail["via"] == "console"]
    assert issued.detail["token"] == token_id and issued.detail["ttl_hours"] == 30 * 24


def test_revoking_in_the_console_stops_the_token_at_once(console):
    login_with_totp(console, "sup1")
    secret = secret_of(make_token(console, name="to revoke"))
    page = console.get(TOKENS)
    token_id = token_id_in(page.text, "to revoke")
    forged = console.post(f"{TOKENS}/{token_id}/revoke", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert console.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    res = console.post(
        f"{TOKENS}/{token_id}/revoke",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert res.status_code == 303 and res.headers["location"] == f"{TOKENS}?revoked=1"
    assert console.get("/api/v1/me", headers=bearer(secret)).status_code == 401
    after = console.get(res.headers["location"])
    assert 'id="token-revoked"' in after.text
    row = re.search(rf'<tr id="token-{token_id}".*?</tr>', after.text, re.S).group(0)
    assert "已吊销" in row and "/revoke" not in row, "listed as revoked, no revoke button"
    assert [e.detail["token"] for e in actions("auth.token_revoked")] == [token_id]


def test_a_read_token_from_the_console_may_look_but_not_post(console):
    login_with_totp(console, "sup1")
    secret = secret_of(make_token(console, name="wall screen", scope="read"))
    assert console.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    refused = console.post("/api/v1/cases", json=case_payload(), headers=bearer(secret))
    assert refused.status_code == 403
    assert refused.json()["detail"] == "token scope 'read' does not allow this request"


def test_another_users_token_cannot_be_revoked_from_the_console(console):
    login_with_totp(console, "sup1")
    secret = secret_of(make_token(console, name="sup1 script"))
    token_id = token_id_in(console.get(TOKENS).text, "sup1 script")
    console.cookies.clear()
    login(console, "officer1")
    res = console.post(
        f"{TOKENS}/{token_id}/revoke", data={"csrf_token": csrf_of(console.get(TOKENS).text)}
    )
    assert res.status_code == 404
    assert console.get("/api/v1/me", headers=bearer(secret)).status_code == 200


def test_the_token_form_names_its_fields_in_errors(console, monkeypatch):
    login(console, "officer1")
    english(console)
    res = make_token(console, name="  ", scope="admin", expires_in_days="91")
    assert res.status_code == 422
    for text in (
        "Name: is required",
        "Scope: choose one of the options",
        "Expires in (days, 1–90): must be a whole number of days from 1 to 90",
    ):
        assert text in res.text, text
    assert 'value="91"' in res.text, "the form keeps what was typed"
    assert make_token(console, expires_in_days="soon").status_code == 422
    assert make_token(console, expires_in_days="0").status_code == 422
    assert "rut_" not in res.text and not actions("auth.token_issued")
    from ops.platform import config

    monkeypatch.setenv("REUNITE_API_TOKEN_MAX_DAYS", "365")
    config.get_settings.cache_clear()
    assert make_token(console, expires_in_days="365").status_code == 201


def change_password(client: TestClient, current: str, new: str, repeat: str | None = None):
    page = client.get(PASSWORD_PAGE)
    return client.post(
        PASSWORD_PAGE,
        data={
            "current_password": current,
            "new_password": new,
            "repeat_password": new if repeat is None else repeat,
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )


def test_a_wrong_current_password_or_a_weak_new_one_is_a_field_error(console):
    login(console, "officer1")
    english(console)
    wrong = change_password(console, "not my password", NEW_PASSWORD)
    assert wrong.status_code == 422 and "Current password: is wrong" in wrong.text
    weak = change_password(console, PASSWORD, "password1234")
    assert weak.status_code == 422 and "New password: is too easy to guess" in weak.text
    short = change_password(console, PASSWORD, "short")
    assert short.status_code == 422 and "New password: must be at least 12 characters" in (
        short.text
    )
    differs = change_password(console, PASSWORD, NEW_PASSWORD, repeat=NEW_PASSWORD + "!")
    assert differs.status_code == 422
    assert "Repeat the new password: does not match the new password" in differs.text
    for res in (wrong, weak, differs):
        assert PASSWORD not in res.text and NEW_PASSWORD not in res.text, "never echoed"
    assert [e.subject for e in actions("user.password_change_failed")] == ["user:1"]
    assert not actions("user.password_changed")


def test_changing_the_password_revokes_tokens_keeps_this_session_and_ends_others(console):
    secret = login_with_totp(console, "sup1")
    token = secret_of(make_token(console, name="before the change"))
    other = TestClient(console.app, base_url="http://testserver")
    assert login(other, "sup1").headers["location"] == "/console/login/totp"
    code = pyotp.TOTP(secret).at(time.time() + 30)
    page = other.get("/console/login/totp")
    other.post("/console/login/totp", data={"code": code, "csrf_token": csrf_of(page.text)})
    assert other.get("/console/", follow_redirects=False).status_code == 200
    before = console.cookies.get("reunite_session")

    res = change_password(console, PASSWORD, NEW_PASSWORD)
    assert res.status_code == 303 and res.headers["location"] == f"{PASSWORD_PAGE}?changed=1"
    done = console.get(res.headers["location"])
    assert done.status_code == 200 and "全部 API 令牌已被吊销" in done.text
    assert console.cookies.get("reunite_session") != before, "the session id was rotated"
    assert console.get("/console/", follow_redirects=False).status_code == 200
    assert other.get("/console/", follow_redirects=False).headers["location"] == "/console/login"
    assert console.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert "已吊销" in console.get(TOKENS).text

    console.cookies.clear()
    assert login(console, "sup1").status_code == 401, "the old password is refused"
    passed = login(console, "sup1", NEW_PASSWORD)
    assert passed.headers["location"] == "/console/login/totp", "the new one is accepted"


def test_an_admins_password_reset_revokes_tokens_and_ends_console_sessions(console):
    from typer.testing import CliRunner

    from alerts.cli import app as cli_app

    login_with_totp(console, "sup1")
    token = secret_of(make_token(console, name="before the reset"))
    result = CliRunner().invoke(
        cli_app, ["users", "set-password", "sup1", "--password-stdin"], input=NEW_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "1 API token(s) revoked, 1 console session(s) ended" in result.output
    assert console.get("/api/v1/me", headers=bearer(token)).status_code == 401
    res = console.get("/console/", follow_redirects=False)
    assert res.headers["location"] == "/console/login"
    (reset,) = actions("user.password_reset")
    assert reset.actor == "cli" and reset.detail == {"tokens_revoked": 1}
