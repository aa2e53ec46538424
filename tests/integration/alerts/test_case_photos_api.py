"""Photos over the API: POST /api/v1/cases/{id}/photos sanitises like the console, and a case
may list only its own photos (a resolved child's photo was attached to a new case; a ref that
was never uploaded showed a broken image)."""

from __future__ import annotations

import io

from PIL import Image

from alerts.console.models import ConsolePhoto
from alerts.feeds import photos
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import case_payload, jpeg_with_gps, token


def new_case(api, who: str = "officer1", **overrides) -> str:
    res = api.post("/api/v1/cases", json=case_payload(**overrides), headers=token(api, who))
    assert res.status_code == 201, res.text
    return res.json()["id"]


def upload(api, case_id: str, data: bytes, who: str = "officer1", ctype: str = "image/jpeg"):
    headers = token(api, who) | {"Content-Type": ctype}
    return api.post(f"/api/v1/cases/{case_id}/photos", content=data, headers=headers)


def test_a_draft_lists_an_uploaded_photo_stripped_of_exif_and_gps(api):
    case_id = new_case(api)
    res = upload(api, case_id, jpeg_with_gps())
    assert res.status_code == 201, res.text
    ref = res.json()["ref"]
    assert res.json() == {"ref": ref, "content_type": "image/jpeg", "listed": True}
    case = api.get(f"/api/v1/cases/{case_id}", headers=token(api, "officer1")).json()
    assert case["photos"] == [{"ref": ref, "content_type": "image/jpeg"}]
    stored = photos.original(get_settings(), ref)
    image = Image.open(io.BytesIO(stored.data))
    assert image.size == (640, 480) and not image.getexif()


def test_refs_that_are_not_this_cases_photos_are_refused_naming_the_field(api):
    first = new_case(api)
    ref = upload(api, first, jpeg_with_gps()).json()["ref"]
    photo = {"ref": ref, "content_type": "image/jpeg"}
    # Another case (even the same officer's) cannot list it.
    res = api.post(
        "/api/v1/cases", json=case_payload(photos=[photo]), headers=token(api, "officer1")
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["field"] == "photos.0.ref"
    second = new_case(api)
    res = api.patch(
        f"/api/v1/cases/{second}", json={"photos": [photo]}, headers=token(api, "officer1")
    )
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "photos.0.ref"
    # A ref nobody uploaded.
    ghost = {"ref": "ph_never_uploaded_000", "content_type": "image/jpeg"}
    res = api.post(
        "/api/v1/cases", json=case_payload(photos=[ghost]), headers=token(api, "officer1")
    )
    assert res.status_code == 422 and "no such uploaded photo" in res.text
    # Its own case can list it again (e.g. after removing it).
    res = api.patch(
        f"/api/v1/cases/{first}", json={"photos": [photo]}, headers=token(api, "officer1")
    )
    assert res.status_code == 200, res.text


def test_bad_uploads_are_refused_with_their_cause(api):
    case_id = new_case(api)
    assert upload(api, case_id, b"GIF89a....", ctype="image/gif").status_code == 415
    res = upload(api, case_id, b"<svg onload=alert(1)>")
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "photo"
    too_big = b"\xff\xd8" + b"0" * (get_settings().photo_max_bytes + 10)
    assert upload(api, case_id, too_big).status_code == 413
    with session_scope() as s:
        assert s.query(ConsolePhoto).count() == 0, "nothing half-written"


def test_who_and_when_may_upload(api):
    case_id = new_case(api)
    assert upload(api, case_id, jpeg_with_gps(), who="szsup").status_code == 404  # not theirs
    no_token = api.post(
        f"/api/v1/cases/{case_id}/photos",
        content=jpeg_with_gps(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert no_token.status_code == 401
    assert api.post(f"/api/v1/cases/{case_id}/submit", headers=token(api, "officer1")).is_success
    assert api.post(f"/api/v1/cases/{case_id}/approve", headers=token(api, "sup1")).is_success
    live = upload(api, case_id, jpeg_with_gps())
    assert live.status_code == 201 and live.json()["listed"] is False, "a live case only owns it"
    photo = {"ref": live.json()["ref"], "content_type": "image/jpeg"}
    res = api.patch(
        f"/api/v1/cases/{case_id}", json={"photos": [photo]}, headers=token(api, "officer1")
    )
    assert res.status_code == 202, "listing it on a live case waits for a second supervisor"
    assert api.post(f"/api/v1/cases/{case_id}/resolve", headers=token(api, "officer1")).is_success
    assert upload(api, case_id, jpeg_with_gps()).status_code == 409
