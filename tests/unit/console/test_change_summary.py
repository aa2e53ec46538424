"""A held change on the case page says what it would publish, in the reader's language."""

from __future__ import annotations

from alerts.cases.models import CaseChange
from alerts.console import i18n, views


def test_a_distant_sighting_shows_its_place_and_a_correction_its_sections():
    zh, en = i18n.translator("zh-CN"), i18n.translator("en")
    sighting = CaseChange(
        kind="sighting", payload={"lat": 24.5, "lon": 118.1, "address": "厦门站", "note": "x"}
    )
    assert views.change_summary(zh, sighting) == "厦门站 · 24.50000, 118.10000"
    details = CaseChange(
        kind="details", payload={"vehicle": {}, "child": {}, "alert_languages": []}
    )
    assert views.change_summary(en, details) == "Alert languages, Child, Vehicle (if any)"
    assert views.change_summary(zh, details) == "预警语言, 儿童信息, 车辆（如有）"
