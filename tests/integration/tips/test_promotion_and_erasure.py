"""A promoted tip re-centres the waves without alerting anyone twice; erasure takes every tip
(text, photo files, place, callback number, dismissal reason) with the case."""

from __future__ import annotations

import base64

from sqlalchemy import select, text

from alerts.privacy import service as privacy
from alerts.tips import service as tips
from alerts.tips.triage import TipState
from alerts.users.models import User
from channels.models import Message
from geo.waves import service as waves
from ops.platform import blobstore
from ops.platform.audit.models import AuditEntry
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import jpeg_with_gps, make_partner
from tests.integration.geo.test_waves import add_devices, approved_case, case_waves, place, run_wave
from tests.integration.partners.support import close
from tests.integration.tips.support import MARKER, live_case, send, tipper


def promote(world: dict, case_id: str, tip_id: int) -> None:
    with session_scope() as s:
        officer = s.get(User, world["officer"])
        tips.triage(s, case_id, tip_id, TipState.CREDIBLE, officer)
        tips.promote(s, case_id, tip_id, officer)


def test_a_promoted_tip_restarts_the_waves_there_and_alerts_no_one_twice(world, api):
    make_partner("Devices")  # partner 1 owns the devices below
    tip_place = place(30, azimuth=270)  # within 50 km: goes out at once
    ids = add_devices({"home": place(5), "by_tip": place(120, azimuth=270)})
    case_id = approved_case(world)
    assert run_wave(case_waves(case_id)[0].id) == {ids["home"]}
    with session_scope() as s:
        message_id = s.scalar(select(Message.id).where(Message.case_id == case_id))
    location = {"lat": tip_place[0], "lon": tip_place[1], "accuracy_m": 20}
    res = send(api, tipper(), message_id, location=location)
    assert res.status_code == 201, res.text
    promote(world, case_id, res.json()["id"])
    new = [w for w in case_waves(case_id) if w.epoch == 1]
    assert new and new[0].center_lat == location["lat"]
    # The home device is 34 km from the tip, inside the new 100 km wave, and already alerted:
    # only the device the old area missed gets the alert.
    assert run_wave(new[0].id) == {ids["by_tip"]}
    assert sorted(waves.alerted(case_id).tolist()) == sorted(ids.values())
    with session_scope() as s:
        kinds = s.scalars(select(Message.kind).where(Message.case_id == case_id)).all()
    assert "update" in kinds, "those already told get an update, not the alert again"


def test_erasure_removes_every_tip_s_content_and_photo_files(world, api):
    case_id, message_id = live_case(world)
    photo = base64.b64encode(jpeg_with_gps()).decode()
    first = send(api, tipper(), message_id, photo=photo).json()["id"]
    second = send(api, tipper("Other"), message_id).json()["id"]
    with session_scope() as s:
        officer = s.get(User, world["officer"])
        tips.triage(s, case_id, second, TipState.DISMISSED, officer, "named the neighbour")
        ref = tips.tips_of(s, case_id)[-1].photo_ref
    store = blobstore.store_for(get_settings())
    assert len(store.names(ref)) == 2  # the photo and its thumbnail
    close(world, case_id)
    with session_scope() as s:
        deleted = privacy.erase(s, case_id, get_settings())
    assert deleted >= 2 and store.names(ref) == []
    with session_scope() as s:
        rows = s.execute(
            text(
                "SELECT id, text, photo_ref, lat, lon, accuracy_m, callback_enc, dismiss_reason,"
                " erased_at, state FROM tips ORDER BY id"
            )
        ).all()
        reasons = s.scalars(
            select(AuditEntry.reason).where(AuditEntry.subject == f"case:{case_id}")
        ).all()
    assert [r[0] for r in rows] == [first, second]
    for row in rows:
        assert row[1:8] == (None,) * 7, row
        assert row[8] is not None
    assert rows[1][9] == "dismissed", "state and times stay for statistics"
    assert "named the neighbour" not in reasons and MARKER not in str(reasons)
