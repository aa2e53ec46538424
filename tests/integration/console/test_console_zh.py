"""The console in zh-CN leaves no English in validation errors, statuses or times.

Before, pydantic's own messages ("Input should be a finite number"), our validators' ("must
not be in the future", "is more than 30 days ago") and wave statuses stayed in English, and
the rules preview showed raw UTC timestamps (2026-12-02 09:33:13.658976+00:00).
"""

from __future__ import annotations

import re
from datetime import timedelta

from ops.platform.clock import utcnow
from tests.integration.console.conftest import csrf_of, login, login_with_totp
from tests.integration.console.test_console_security import post_case

ENGLISH_WORD = re.compile(r"[A-Za-z]{2,}")
TAG = re.compile(r"<[^>]+>")


def error_texts(html: str) -> list[str]:
    """The visible text of the error summary and of every field error."""
    parts = re.findall(r'<small class="error"[^>]*>(.*?)</small>', html, re.S)
    summary = re.search(r'id="error-summary".*?</div>', html, re.S)
    if summary:
        parts.append(summary.group(0).split(">", 1)[1])
    return [TAG.sub(" ", p) for p in parts]


def test_a_form_full_of_errors_has_no_english_in_zh_cn(console):
    login(console, "officer1")
    future = (utcnow() + timedelta(hours=8, days=2)).strftime("%Y-%m-%dT%H:%M")
    res = post_case(
        console,
        lat="nan",  # pydantic: finite_number
        lon="200",  # less_than_equal
        last_seen_at=future,  # our validator: must not be in the future
        tip_line="1" * 40,  # string_too_long / pattern
        clothing="bad\x07bell",  # control character
        languages=[],
    )
    assert res.status_code == 422
    texts = error_texts(res.text)
    assert len(texts) >= 5, texts
    for text in texts:
        assert not ENGLISH_WORD.search(text), text
    assert "不能是将来的时间" in res.text


def test_a_last_seen_time_too_long_ago_is_explained_in_zh_cn(console):
    login(console, "officer1")
    old = (utcnow() + timedelta(hours=8) - timedelta(days=45)).strftime("%Y-%m-%dT%H:%M")
    res = post_case(console, last_seen_at=old)
    assert res.status_code == 422
    texts = error_texts(res.text)
    assert texts and all(not ENGLISH_WORD.search(t) for t in texts), texts
    assert "已超过 30 天" in res.text


def test_a_too_early_sighting_is_explained_in_zh_cn(console):
    from tests.integration.console.test_case_list import approve, new_case

    case_id = new_case(console, "officer1")
    approve(console, case_id)
    page = console.get(f"/console/cases/{case_id}")
    early = (utcnow() + timedelta(hours=8) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    res = console.post(
        f"/console/cases/{case_id}/sightings",
        data={"csrf_token": csrf_of(page.text), "at": early, "lat": "23.1", "lon": "113.2"},
    )
    assert res.status_code == 422
    assert "不能早于本案上一次目击或最后出现的时间" in res.text


def test_rules_preview_shows_local_times_not_raw_utc(console):
    login_with_totp(console, "ops1")
    page = console.get("/console/rules")
    res = console.post(
        "/console/rules/preview",
        data={"csrf_token": csrf_of(page.text), "lat": "23.1", "lon": "113.2", "minutes": "30"},
    )
    assert res.status_code == 200
    table = res.text.split('id="reach"')[1].split("</table>")[0]
    assert "+00:00" not in table and not re.search(r"\d\d:\d\d:\d\d", table)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", table)


def test_editing_a_draft_to_a_time_too_long_ago_gives_the_form_back_in_zh_cn(console):
    """Before, the edit page answered with a bare error page in English."""
    from tests.integration.console.test_case_list import new_case
    from tests.integration.console.test_console_security import case_form

    case_id = new_case(console, "officer1", action="save")
    page = console.get(f"/console/cases/{case_id}")
    old = (utcnow() + timedelta(hours=8) - timedelta(days=45)).strftime("%Y-%m-%dT%H:%M")
    res = console.post(
        f"/console/cases/{case_id}/edit",
        data=case_form(last_seen_at=old) | {"csrf_token": csrf_of(page.text)},
    )
    assert res.status_code == 422
    assert "已超过 30 天" in res.text and 'id="f-last_seen_at"' in res.text


def alert_text(html: str) -> str:
    return TAG.sub(" ", html.split('role="alert" class="alert">')[1].split("</p>")[0])


def test_error_pages_speak_the_sessions_language(console):
    """Before, refusals showed the exception's English text ("case … not found",
    "two-person rule: …") on the zh-CN error page."""
    login(console, "officer1")
    missing = console.get("/console/cases/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert not ENGLISH_WORD.search(alert_text(missing.text)), alert_text(missing.text)

    console.cookies.clear()
    login_with_totp(console, "sup1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    review = console.get(f"/console/cases/{case_id}/review")
    own = console.post(
        f"/console/cases/{case_id}/approve", data={"csrf_token": csrf_of(review.text)}
    )
    assert own.status_code == 403
    assert "双人规则" in alert_text(own.text) and not ENGLISH_WORD.search(alert_text(own.text))


def test_rule_set_errors_name_the_row_in_zh_cn(console):
    """Before, the rules editor showed geo.rules' English ("steps[1].radius_km: must be
    greater than 100 (steps[0])")."""
    login_with_totp(console, "ops1")
    page = console.get("/console/rules")
    rows = {"rows": "3", "up_to_minutes_0": "60", "radius_km_0": "100"}
    cases = [
        ({"up_to_minutes_1": "120", "radius_km_1": "50"}, "第 1 行 · 半径（公里）"),
        ({"up_to_minutes_1": "30", "radius_km_1": "200"}, "第 1 行 · 走失后不超过（分钟）"),
        ({"up_to_minutes_1": "abc", "radius_km_1": "200"}, "请输入数字"),
        ({"max_radius_km": "99999"}, "系统上限"),
    ]
    for fields, expected in cases:
        data = {"csrf_token": csrf_of(page.text), "max_radius_km": "500", **rows, **fields}
        res = console.post("/console/rules", data={**data, "action": "validate"})
        assert res.status_code == 422, fields
        error = TAG.sub("", res.text.split('id="rules-error">')[1].split("</p>")[0])
        assert expected in error and not ENGLISH_WORD.search(error), error


def test_the_rules_form_keeps_or_turns_off_late_arrival_alerts(console):
    from geo.rulesets import service as rulesets
    from ops.platform.db import session_scope

    login_with_totp(console, "ops1")
    page = console.get("/console/rules")
    assert re.search(r'name="alert_late_arrivals" value="on" checked', page.text)
    data = {
        "csrf_token": csrf_of(page.text),
        "rows": "1",
        "up_to_minutes_0": "60",
        "radius_km_0": "100",
        "max_radius_km": "500",
        "action": "save",
    }
    res = console.post(
        "/console/rules", data={**data, "alert_late_arrivals": "on"}, follow_redirects=False
    )
    assert res.status_code == 303, res.text
    with session_scope() as s:
        assert rulesets.alerts_late_arrivals(s) is True
    page = console.get("/console/rules")
    res = console.post(
        "/console/rules", data={**data, "csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert res.status_code == 303, res.text  # the box unticked: off from this version on
    with session_scope() as s:
        assert rulesets.alerts_late_arrivals(s) is False
    assert 'name="alert_late_arrivals" value="on" >' in console.get("/console/rules").text
