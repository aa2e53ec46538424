"""A case form keeps its photo across a server-side error, and a no-JavaScript upload over
the size limit gets the form back with everything else kept.

Before, a form error dropped the chosen photo silently (browsers never keep a file input),
and a 30 MB photo got a bare JSON 413 that lost the whole form.
"""

from __future__ import annotations

import io
import re

from PIL import Image
from sqlalchemy import select

from alerts.cases.models import Case
from alerts.console.i18n import translate
from alerts.console.models import ConsolePhoto
from alerts.users.roles import Role
from ops.platform import config
from ops.platform.db import session_scope
from tests.factories import jpeg_with_gps, make_user
from tests.integration.console.conftest import csrf_of, login
from tests.integration.console.test_console_security import case_form, post_case

KEPT = re.compile(r'name="photo_ref" value="([^"]+)"')


def test_a_photo_is_kept_across_a_form_error_and_used_on_resubmission(console):
    login(console, "officer1")
    res = post_case(console, files={"photo": ("kid.jpg", jpeg_with_gps(), "image/jpeg")}, lat="x")
    assert res.status_code == 422
    ref = KEPT.search(res.text).group(1)
    assert 'id="photo-kept"' in res.text and f"/console/photos/{ref}/thumb" in res.text
    assert translate("zh-CN", "case.photo_kept") in res.text

    again = console.post(
        "/console/cases",
        data=case_form(photo_ref=ref) | {"csrf_token": csrf_of(res.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303, again.text
    case_id = again.headers["location"].rsplit("/", 1)[-1]
    with session_scope() as s:
        assert s.get(Case, case_id).details.photos[0]["ref"] == ref
        assert s.get(ConsolePhoto, ref).case_id == case_id


def test_another_users_pending_photo_cannot_be_taken_by_its_ref(console):
    make_user("officer2", Role.OFFICER, "Guangzhou")
    login(console, "officer1")
    res = post_case(console, files={"photo": ("kid.jpg", jpeg_with_gps(), "image/jpeg")}, lat="x")
    ref = KEPT.search(res.text).group(1)
    console.cookies.clear()
    login(console, "officer2")
    page = console.get("/console/cases/new")
    taken = console.post(
        "/console/cases",
        data=case_form(photo_ref=ref) | {"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert taken.status_code == 422 and 'id="e-photo"' in taken.text
    assert ref not in taken.text
    with session_scope() as s:
        assert s.scalars(select(Case)).all() == []


def test_an_oversize_upload_without_javascript_keeps_the_rest_of_the_form(console, monkeypatch):
    monkeypatch.setenv("REUNITE_PHOTO_MAX_BYTES", "20000")
    config.get_settings.cache_clear()
    login(console, "officer1")
    huge = b"\xff\xd8\xff\xe0" + b"\0" * (3 * 2**20)  # 3 MB: well past photo max + slack
    res = post_case(
        console,
        files={"photo": ("kid.jpg", huge, "image/jpeg")},
        child_name="Lin Xiaoyu",
        clothing="red jacket",
    )
    assert res.status_code == 413
    assert res.headers["content-type"].startswith("text/html")
    assert 'value="Lin Xiaoyu"' in res.text and "red jacket" in res.text
    assert 'id="e-photo"' in res.text and 'id="photo-too-large"' in res.text
    with session_scope() as s:
        assert s.scalars(select(Case)).all() == []
        assert s.scalars(select(ConsolePhoto)).all() == []


def test_an_oversize_upload_to_an_edit_keeps_the_edited_values(console, monkeypatch):
    login(console, "officer1")
    case_id = post_case(console, action="save").headers["location"].rsplit("/", 1)[-1]
    monkeypatch.setenv("REUNITE_PHOTO_MAX_BYTES", "20000")
    config.get_settings.cache_clear()
    page = console.get(f"/console/cases/{case_id}")
    token = csrf_of(page.text)
    big = io.BytesIO()
    Image.effect_noise((1200, 1200), 80).convert("RGB").save(big, "PNG")
    assert len(big.getvalue()) > 20000 + 256 * 1024
    res = console.post(
        f"/console/cases/{case_id}/edit?csrf_token={token}",
        data=case_form(clothing="blue coat") | {"csrf_token": token},
        files={"photo": ("kid.png", big.getvalue(), "image/png")},
    )
    assert res.status_code == 413
    assert "blue coat" in res.text and 'id="e-photo"' in res.text


def test_only_a_multipart_case_form_may_be_read_past_the_photo_limit(console, monkeypatch):
    """The oversize read is for an upload whose token was checked from its URL; any other
    body (read to find its token) is still refused by its declared size before parsing."""
    monkeypatch.setenv("REUNITE_PHOTO_MAX_BYTES", "20000")
    config.get_settings.cache_clear()
    login(console, "officer1")
    page = console.get("/console/cases/new")
    res = console.post(
        "/console/cases",
        data={"csrf_token": csrf_of(page.text), "child_name": "x" * (400 * 1024)},
    )
    assert res.status_code == 413
    assert 'value="x' not in res.text


def test_a_kept_photo_no_case_took_is_deleted_after_a_day(console):
    """Keeping photos across errors must not keep a child's photo for an abandoned form."""
    from datetime import timedelta

    from alerts.privacy import tasks
    from ops.platform import blobstore
    from ops.platform.clock import utcnow

    login(console, "officer1")
    photo = {"photo": ("kid.jpg", jpeg_with_gps(), "image/jpeg")}
    old = KEPT.search(post_case(console, files=photo, lat="x").text).group(1)
    fresh = KEPT.search(post_case(console, files=photo, lat="x").text).group(1)
    with session_scope() as s:
        s.get(ConsolePhoto, old).created_at = utcnow() - timedelta(hours=25)
    tasks.erase_due()
    store = blobstore.store_for(config.get_settings())
    with session_scope() as s:
        assert s.get(ConsolePhoto, old) is None and store.names(old) == []
        assert s.get(ConsolePhoto, fresh) is not None and store.names(fresh) != []
