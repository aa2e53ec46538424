"""Server-side console security: headers, CSRF, session rotation and expiry, lockout, roles,
TOTP, the two-person rule and photo sanitising (TestClient over the real app, real Redis)."""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from PIL import Image
from sqlalchemy import select

from alerts.console.models import ConsolePhoto, ConsoleSession, TotpSecret
from alerts.users.roles import Rank, Role
from ops.platform import config
from ops.platform.audit.models import AuditEntry
from ops.platform.clock import utcnow
from ops.platform.db import session_scope
from tests.factories import PASSWORD, jpeg_with_gps, make_user
from tests.integration.console.conftest import csrf_of, login, login_with_totp


def case_form(**overrides) -> dict:
    """A valid new-case form as the browser posts it."""
    when = (utcnow() + timedelta(hours=8) - timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M")
    data = {
        "child_name": "Lin Xiaoyu",
        "sex": "female",
        "age_years": "6",
        "height_cm": "115",
        "clothing": "red jacket",
        "last_seen_at": when,
        "lat": "23.1291",
        "lon": "113.2644",
        "address": "Beijing Road, Guangzhou",
        "tip_line": "+86 20 110",
        "languages": ["zh-CN", "en"],
        "action": "submit",
    }
    data.update(overrides)
    return data


def post_case(client, files=None, **overrides):
    """Post the new-case form as the browser does: an upload carries the CSRF token in the
    form's action URL (checked before the body is parsed), the fields carry it too."""
    page = client.get("/console/cases/new")
    token = csrf_of(page.text)
    data = case_form(**overrides) | {"csrf_token": token}
    url = f"/console/cases?csrf_token={token}" if files else "/console/cases"
    return client.post(url, data=data, files=files, follow_redirects=False)


def _open_temp_files() -> list[str]:
    import os
    import tempfile

    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue
    return [t for t in targets if t.startswith(tempfile.gettempdir())]


def test_an_uploads_temporary_file_is_closed_when_the_request_ends(console):
    """Before, a refused upload's spooled temp file stayed open until garbage collection."""
    import gc

    login(console, "officer1")
    gc.disable()  # so only the request's own cleanup can close the file
    try:
        before = len(_open_temp_files())
        fake = b"%PDF-1.4 " + b"0" * (3 * 2**20)  # > 1 MB: spooled to disk, then refused
        res = post_case(console, files={"photo": ("kid.jpg", fake, "image/jpeg")})
        assert res.status_code == 422
        assert len(_open_temp_files()) == before
    finally:
        gc.enable()


def test_an_upload_without_the_token_in_its_url_is_refused_before_its_body_is_read(console):
    """Before, the multipart body (up to the photo limit) was parsed and spooled to a temp
    file to find the token in it, even for a session that was not logged in."""
    login(console, "officer1")
    page = console.get("/console/cases/new")
    data = case_form() | {"csrf_token": csrf_of(page.text)}
    files = {"photo": ("kid.jpg", b"\xff\xd8" + b"0" * 1000, "image/jpeg")}
    res = console.post("/console/cases", data=data, files=files, follow_redirects=False)
    assert res.status_code == 403
    res = console.post(
        "/console/cases?csrf_token=not-the-token", data=data, files=files, follow_redirects=False
    )
    assert res.status_code == 403


def actions(*names: str) -> list[str]:
    with session_scope() as s:
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.action.in_(names))
                .order_by(AuditEntry.seq)
            )
        )


def test_pages_carry_strict_csp_and_security_headers(console):
    res = console.get("/console/login")
    h = res.headers
    csp = h["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"
    cookie = h["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # test mode; production forces it (next test)
    assert "<script" not in res.text.replace('<script src="/console/static/console.js"', "")


def test_production_cookies_are_secure_with_host_prefix(monkeypatch):
    settings = config.Settings(mode="development", cookie_secure=True)
    from alerts.console import web

    assert web.cookie_name(settings) == "__Host-reunite"
    assert config.Settings(mode="test").secure_cookies is False
    with pytest.raises(ValueError, match="COOKIE_SECURE"):
        config.Settings(
            mode="production",
            secret_key="x" * 40,
            database_url="postgresql://h/d",
            redis_url="redis://h",
            cookie_secure=False,
        )


def test_state_changing_requests_without_csrf_token_are_refused(console):
    page = console.get("/console/login")
    res = console.post("/console/login", data={"username": "officer1", "password": PASSWORD})
    assert res.status_code == 403 and "CSRF" in res.text
    res = console.post(
        "/console/login",
        data={"username": "officer1", "password": PASSWORD, "csrf_token": "forged"},
    )
    assert res.status_code == 403
    assert login(console, "officer1").status_code == 303
    created = post_case(console)
    case_id = created.headers["location"].rsplit("/", 1)[-1]
    refused = console.post(f"/console/cases/{case_id}/cancel", data={"reason": "dup"})
    assert refused.status_code == 403
    cross = console.post(
        f"/console/cases/{case_id}/cancel",
        data={"reason": "dup", "csrf_token": csrf_of(console.get("/console/").text)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert csrf_of(page.text) != csrf_of(console.get("/console/").text)  # rotated at login


def test_session_id_rotates_at_login_and_the_old_one_dies(console):
    console.get("/console/login")
    before = console.cookies.get("reunite_session")
    assert login(console, "officer1").status_code == 303
    after = console.cookies.get("reunite_session")
    assert before and after and before != after
    assert console.get("/console/", follow_redirects=False).status_code == 200
    console.cookies.set("reunite_session", before)
    res = console.get("/console/", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/login"


def test_idle_session_expires(console):
    login(console, "officer1")
    with session_scope() as s:
        for row in s.scalars(select(ConsoleSession).where(ConsoleSession.user_id.is_not(None))):
            row.last_seen_at = utcnow() - timedelta(minutes=31)
    res = console.get("/console/", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/login"


def test_repeated_wrong_passwords_lock_the_account_and_everything_is_audited(console):
    for _ in range(4):
        assert login(console, "officer1", "wrong password!!").status_code == 401
    locked = login(console, "officer1", "wrong password!!")
    assert locked.status_code == 429 and "60" in locked.text
    # Even the right password is refused while locked, without checking it.
    assert login(console, "officer1").status_code == 429
    assert actions("auth.login_failed", "auth.locked_out", "auth.login_refused_locked") == [
        "auth.login_failed"
    ] * 5 + ["auth.locked_out", "auth.login_refused_locked"]
    # Another account from the same address is not locked by this one.
    assert login(console, "sup2").status_code == 303


def test_many_failures_from_one_address_slow_it_down_but_never_lock_out_a_colleague(
    console, monkeypatch
):
    """Before, 20 failures from one address (a station behind one proxy) locked every officer
    there out; now attempts from it are delayed, and the right password still gets in."""
    monkeypatch.setenv("REUNITE_LOGIN_IP_MAX_FAILURES", "3")
    monkeypatch.setenv("REUNITE_LOGIN_ADDRESS_MAX_DELAY_SECONDS", "0.5")
    config.get_settings.cache_clear()
    for name in ("nobody1", "nobody2", "nobody3", "nobody4", "nobody5"):
        assert login(console, name, "wrong password!!").status_code == 401
    started = time.monotonic()
    assert login(console, "officer1").status_code == 303, "a correct login is never refused"
    assert time.monotonic() - started >= 0.5, "but the busy address is slowed down"


def test_roles_are_checked_server_side(console):
    assert console.get("/console/", follow_redirects=False).headers["location"] == (
        "/console/login"
    )
    login(console, "officer1")
    assert console.get("/console/rules").status_code == 403
    assert console.get("/console/partners").status_code == 403
    assert console.get("/console/approvals").status_code == 403
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    token = csrf_of(console.get(f"/console/cases/{case_id}").text)
    res = console.post(f"/console/cases/{case_id}/approve", data={"csrf_token": token})
    assert res.status_code == 403
    with console as other:
        other.cookies.clear()
        login_with_totp(other, "ops1")
        assert other.get("/console/cases/new").status_code == 403
        assert other.get(f"/console/cases/{case_id}").status_code == 403
        assert other.get("/console/rules").status_code == 200


def test_supervisor_must_enrol_totp_and_a_code_is_never_accepted_twice(console):
    res = login(console, "sup1")
    assert res.headers["location"] == "/console/totp/enrol"
    assert console.get("/console/", follow_redirects=False).headers["location"] == (
        "/console/totp/enrol"
    )
    secret = login_with_totp(console, "sup1")
    with session_scope() as s:
        row = s.get(TotpSecret, 2)
        assert row is not None and row.confirmed_at is not None
        assert secret.encode() not in row.secret_enc  # stored encrypted
    used = pyotp.TOTP(secret).now()
    console.post("/console/logout", data={"csrf_token": csrf_of(console.get("/console/").text)})
    assert login(console, "sup1").headers["location"] == "/console/login/totp"
    page = console.get("/console/login/totp")
    again = console.post(
        "/console/login/totp", data={"code": used, "csrf_token": csrf_of(page.text)}
    )
    assert again.status_code == 401
    import time

    nxt = pyotp.TOTP(secret).at(time.time() + 30)
    ok = console.post(
        "/console/login/totp",
        data={"code": nxt, "csrf_token": csrf_of(again.text)},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/console/"
    assert "auth.mfa_enrolled" in actions("auth.mfa_enrolled")


def test_two_person_rule_holds_in_the_console(console):
    login_with_totp(console, "sup1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    review = console.get(f"/console/cases/{case_id}/review")
    assert review.status_code == 200
    assert "two-person" in review.text or "双人规则" in review.text
    own = console.post(
        f"/console/cases/{case_id}/approve", data={"csrf_token": csrf_of(review.text)}
    )
    assert own.status_code == 403
    console.cookies.clear()
    login_with_totp(console, "sup2")
    review = console.get(f"/console/cases/{case_id}/review")
    for expected in ("svg", "km", "CAP", "Lin Xiaoyu"):
        assert expected in review.text
    ok = console.post(
        f"/console/cases/{case_id}/approve",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert 'id="case-state">预警中' in console.get(f"/console/cases/{case_id}").text


def test_uploaded_photo_loses_exif_and_gps_and_only_a_thumbnail_is_served(console):
    login(console, "officer1")
    res = post_case(console, files={"photo": ("kid.jpg", jpeg_with_gps(), "image/jpeg")})
    assert res.status_code == 303, res.text
    with session_scope() as s:
        photo = s.scalars(select(ConsolePhoto)).one()
        ref = photo.ref
    settings = config.get_settings()
    stored = settings.data_dir / "photos" / f"{ref}.jpg"
    image = Image.open(stored)
    assert not image.getexif() and "exif" not in image.info
    assert not image.getexif().get_ifd(0x8825)
    assert re.fullmatch(r"[A-Za-z0-9_\-]{8,64}", ref)
    case_page = console.get(res.headers["location"])
    assert f"/console/photos/{ref}/thumb" in case_page.text
    thumb = console.get(f"/console/photos/{ref}/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320
    assert console.get(f"/console/photos/{ref}").status_code == 404  # no original route
    console.cookies.clear()
    assert console.get(f"/console/photos/{ref}/thumb", follow_redirects=False).status_code == 303


def test_decompression_bomb_png_is_refused(console):
    login(console, "officer1")
    buf = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buf, "PNG")  # 49 Mpx: over the 40 Mpx cap, tiny file
    res = post_case(console, files={"photo": ("big.png", buf.getvalue(), "image/png")})
    assert res.status_code == 422
    assert "e-photo" in res.text
    with session_scope() as s:
        assert s.scalars(select(ConsolePhoto)).all() == []


def test_non_image_and_oversized_uploads_are_refused(console, monkeypatch):
    login(console, "officer1")
    fake = post_case(console, files={"photo": ("kid.jpg", b"%PDF-1.4 not an image", "image/jpeg")})
    assert fake.status_code == 422 and "JPEG" in fake.text
    monkeypatch.setenv("REUNITE_PHOTO_MAX_BYTES", "20000")
    config.get_settings.cache_clear()
    big = io.BytesIO()
    Image.effect_noise((400, 400), 80).convert("RGB").save(big, "PNG")
    assert len(big.getvalue()) > 20000
    res = post_case(console, files={"photo": ("kid.png", big.getvalue(), "image/png")})
    assert res.status_code == 413


def test_form_errors_name_the_fields_without_echoing_to_logs(console):
    login(console, "officer1")
    console.post(
        "/console/language",
        data={
            "language": "en",
            "next": "/console/cases/new",
            "csrf_token": csrf_of(console.get("/console/").text),
        },
    )
    res = post_case(console, child_name="", lat="north", age_years="")
    assert res.status_code == 422
    for label in ("Name: is required", "Latitude: must be a number", "Age (years)"):
        assert label in res.text


def test_correcting_an_active_case_in_the_console_queues_an_update(console):
    from ops.platform.outbox.models import OutboxMessage

    login_with_totp(console, "sup1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    console.cookies.clear()
    login_with_totp(console, "sup2")
    review = console.get(f"/console/cases/{case_id}/review")
    console.post(f"/console/cases/{case_id}/approve", data={"csrf_token": csrf_of(review.text)})
    page = console.get(f"/console/cases/{case_id}")
    assert f'action="/console/cases/{case_id}/edit?csrf_token=' in page.text
    saved = console.post(
        f"/console/cases/{case_id}/edit",
        data=case_form(clothing="green raincoat") | {"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:300]
    # Two-person rule: the correction waits for another supervisor, shown on the case page.
    with session_scope() as s:
        kinds = [r.args[1] for r in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert kinds == ["approved"]
    page = console.get(f"/console/cases/{case_id}")
    assert (
        'id="pending-changes"' in page.text
        and "/approve" not in page.text.split('id="pending-changes"')[1].split("</section>")[0]
    ), "the proposer cannot approve their own change"
    # The pending change names what it replaces in the reader's words, not payload keys.
    summary = re.search(r'class="change-summary">([^<]*)<', page.text).group(1)
    assert summary == "儿童信息", summary
    console.cookies.clear()
    make_user("sup3", Role.SUPERVISOR, "Guangzhou", Rank.INSPECTOR)
    login_with_totp(console, "sup3")
    page = console.get(f"/console/cases/{case_id}")
    action = re.search(r'action="(/console/cases/[^"]+/changes/\d+/approve)"', page.text).group(1)
    assert console.post(action, data={"csrf_token": csrf_of(page.text)}).status_code == 200
    with session_scope() as s:
        kinds = [r.args[1] for r in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert kinds == ["approved", "updated"]


def test_drill_case_pages_show_the_drill_banner_and_marked_previews(console):
    from alerts.cases import service as cases
    from alerts.cases.schemas import CaseCreate
    from alerts.feeds.models import CaseDrill
    from alerts.users.models import User
    from ops.platform.config import get_settings
    from ops.platform.db import session_scope
    from tests.factories import case_payload

    with session_scope() as s:
        officer = s.scalars(select(User).where(User.username == "officer1")).one()
        sup = s.scalars(select(User).where(User.username == "sup1")).one()
        case = cases.create(s, CaseCreate.model_validate(case_payload()), officer, get_settings())
        s.add(CaseDrill(case_id=case.id, marked_by_id=sup.id))
        cases.submit(s, case.id, officer)
        case_id = case.id
    login_with_totp(console, "sup1")
    review = console.get(f"/console/cases/{case_id}/review")
    assert review.status_code == 200, review.text
    assert 'id="drill-banner"' in review.text
    assert "【演练】儿童失踪预警" in review.text and "EXERCISE: Missing child alert" in review.text
