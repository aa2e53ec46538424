"""Console test wiring: an app client, users and a helper that logs in through the forms."""

from __future__ import annotations

import re

import pyotp
import pytest
from fastapi.testclient import TestClient

from alerts.users.roles import Rank, Role
from tests.factories import PASSWORD, make_agency, make_user

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token embedded in a console page."""
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def console(database, redis_client):
    """A TestClient over the app with an agency, an officer, two supervisors and an operator."""
    for key in redis_client.scan_iter("console:login:*"):
        redis_client.delete(key)
    from alerts.app import create_app

    make_agency("Guangzhou")
    make_user("officer1", Role.OFFICER, "Guangzhou")
    make_user("sup1", Role.SUPERVISOR, "Guangzhou", Rank.INSPECTOR)
    make_user("sup2", Role.SUPERVISOR, "Guangzhou", Rank.INSPECTOR)
    make_user("ops1", Role.OPERATOR, "Guangzhou")
    with TestClient(create_app(), base_url="http://testserver") as client:
        yield client


def login(client: TestClient, username: str, password: str = PASSWORD):
    """Post the login form with a fresh CSRF token; returns the response (no redirects)."""
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def enrolment_code(username: str) -> str:
    """What an admin hands over for a first TOTP enrolment (`reunite users enrolment-code`)."""
    from sqlalchemy import select

    from alerts.users import service as users
    from alerts.users.models import User
    from ops.platform.db import session_scope

    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == username))
        return users.issue_enrolment_code(session, user, actor="test:admin")


def login_with_totp(client: TestClient, username: str) -> str:
    """Log in a user who must use TOTP, enrolling first if needed; returns the secret."""
    res = login(client, username)
    assert res.status_code == 303, res.text
    if res.headers["location"] == "/console/totp/enrol":
        # First the one-time enrolment code an admin issued, then the secret.
        page = client.get("/console/totp/enrol")
        sent = client.post(
            "/console/totp/enrol/code",
            data={"enrolment_code": enrolment_code(username), "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert sent.status_code == 303, sent.text
        page = client.get("/console/totp/enrol")
        secret = re.search(r'id="totp-secret">([^<]+)<', page.text).group(1).replace(" ", "")
        done = client.post(
            "/console/totp/enrol",
            data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        return secret
    raise AssertionError("expected enrolment")
