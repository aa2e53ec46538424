"""Partners send tips about a live alert; the officer's case gets them, checked and sanitised."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta

from PIL import Image
from sqlalchemy import select, text

from alerts.partners import service as partners
from alerts.partners.models import Partner
from alerts.tips.models import Tip
from ops.platform import blobstore
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import jpeg_with_gps
from tests.integration.partners.support import close
from tests.integration.tips.support import CALLBACK, MARKER, live_case, send, tipper


def fields(res) -> set[str]:
    return {e["field"] for e in res.json()["detail"]}


def test_a_partner_tip_reaches_the_case_and_the_callback_is_not_stored_in_clear(world, api):
    case_id, message_id = live_case(world)
    res = send(api, tipper(), message_id)
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["case_id"] == case_id and body["state"] == "new" and body["photo"] is False
    assert MARKER not in res.text and CALLBACK not in res.text, "the tip is never echoed"
    with session_scope() as s:
        raw = s.execute(
            text("SELECT text, callback_enc, lat, source FROM tips WHERE id = :id"),
            {"id": body["id"]},
        ).one()
    assert MARKER in raw[0] and raw[2] == 23.14 and raw[3] == "partner"
    stored = bytes(raw[1])
    assert CALLBACK.encode() not in stored and b"138" not in stored
    from alerts.tips import service as tips

    with session_scope() as s:
        assert tips.callback_of(get_settings(), s.get(Tip, body["id"])) == CALLBACK


def test_the_cap_identifier_names_the_case_as_the_message_id_does(world, api):
    case_id, message_id = live_case(world)
    res = send(api, tipper(), f"reunite:{message_id}")
    assert res.status_code == 201 and res.json()["case_id"] == case_id


def test_invalid_fields_are_refused_by_name_without_echoing_them(world, api):
    _case_id, message_id = live_case(world)
    headers = tipper()
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    cases = [
        ({"text": ""}, "text"),
        ({"text": "bad \u202e text"}, "text"),
        ({"seen_at": future}, "seen_at"),
        ({"seen_at": "2025-06-01T10:00:00"}, "seen_at"),  # no offset
        ({"location": {"lat": 91, "lon": 113.2, "accuracy_m": 5}}, "location.lat"),
        ({"location": {"lat": 23.1, "lon": 113.2, "accuracy_m": -1}}, "location.accuracy_m"),
        ({"location": {"lat": 23.1, "lon": 113.2}}, "location.accuracy_m"),
        ({"callback": "call me maybe"}, "callback"),
        ({"photo": "not base64!"}, "photo"),
        ({"photo": base64.b64encode(b"GIF89a not really").decode()}, "photo"),
        ({"surprise": 1}, "surprise"),
    ]
    for override, field in cases:
        res = send(api, headers, message_id, **override)
        assert res.status_code == 422, (override, res.text)
        assert field in fields(res), (override, res.json())
        assert MARKER not in res.text
    res = api.post("/api/v1/partner/tips", json={"message_id": message_id}, headers=headers)
    assert {"text", "seen_at"} <= fields(res)


def test_a_tip_for_an_unknown_or_closed_alert_is_refused_clearly(world, api):
    case_id, message_id = live_case(world)
    headers = tipper()
    res = send(api, headers, "not-a-message")
    assert res.status_code == 422 and fields(res) == {"message_id"}
    res = send(api, headers, "00000000-0000-0000-0000-000000000000:alert:0:1")
    assert res.status_code == 404 and "message_id" in res.json()["detail"]
    close(world, case_id)
    res = send(api, headers, message_id)
    assert res.status_code == 409
    assert "resolved" in res.json()["detail"] and "tip line" in res.json()["detail"]
    with session_scope() as s:
        assert s.scalar(select(Tip.id)) is None


def test_a_key_without_the_tips_scope_is_refused_and_the_partner_limit_applies(world, api):
    _case_id, message_id = live_case(world)
    res = send(api, tipper("FeedsOnly", ("feeds:read",)), message_id)
    assert res.status_code == 403 and "tips:write" in res.json()["detail"]
    headers = tipper("Chatty")
    with session_scope() as s:
        partner = s.scalar(select(Partner).where(Partner.name == "Chatty"))
        partners.set_profile(
            s,
            partner,
            actor="test",
            area=None,
            languages=[],
            formats=[],
            rate_limit_per_minute=2,
        )
    codes = [send(api, headers, message_id).status_code for _ in range(3)]
    assert codes[:2] == [201, 201] and codes[2] == 429, codes


def test_a_photo_is_re_encoded_without_its_gps_and_kept_in_the_photo_store(world, api):
    _case_id, message_id = live_case(world)
    photo = base64.b64encode(jpeg_with_gps()).decode()
    res = send(api, tipper(), message_id, photo=photo)
    assert res.status_code == 201 and res.json()["photo"] is True, res.text
    with session_scope() as s:
        tip = s.get(Tip, res.json()["id"])
        ref, content_type = tip.photo_ref, tip.photo_content_type
    assert content_type == "image/jpeg" and ref.startswith("tp_")
    stored = blobstore.store_for(get_settings()).get(f"{ref}.jpg")
    image = Image.open(io.BytesIO(stored))
    assert image.size == (640, 480) and not image.getexif(), "EXIF (and GPS) dropped"


def test_an_oversized_photo_is_refused_naming_the_photo(world, api, monkeypatch):
    _case_id, message_id = live_case(world)
    monkeypatch.setenv("REUNITE_PHOTO_MAX_BYTES", "2048")
    get_settings.cache_clear()
    res = send(api, tipper(), message_id, photo=base64.b64encode(jpeg_with_gps()).decode())
    assert res.status_code == 413 and res.json()["detail"].startswith("photo:"), res.text
