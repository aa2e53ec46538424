"""Rendering per kind and language, budgets and truncation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels import messages, sms
from channels.messages import MessageKind, Sex
from tests.peers.samples import sample_content


def test_alert_in_chinese_names_child_description_place_and_local_time():
    m = messages.render(sample_content(), "zh-CN")

    assert m.title == "儿童失踪预警：张小明"
    assert "男，6岁，身高约120厘米" in m.body
    assert "红色外套" in m.body and "望京SOHO" in m.body
    assert "5月1日14:30" in m.body  # 06:30 UTC shown in Asia/Shanghai
    assert m.body.endswith("如有线索请拨打110。")
    assert m.photo_url is not None


def test_alert_in_english_shows_utc_offset_not_ambiguous_abbreviation():
    m = messages.render(sample_content(child_name="Lily Chen", sex=Sex.FEMALE), "en")

    assert m.title == "Missing child alert: Lily Chen"
    assert "6-year-old girl, about 120 cm tall" in m.body
    assert "1 May 14:30 (UTC+8)" in m.body
    assert "CST" not in m.body


def test_time_zone_is_a_parameter():
    m = messages.render(sample_content(), "en", tz="Europe/London")

    assert "1 May 07:30 (UTC+1)" in m.body


def test_update_is_marked_as_update():
    m = messages.render(sample_content(kind=MessageKind.UPDATE), "zh-CN")

    assert m.title.startswith("儿童失踪预警（更新）")


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_resolved_thanks_the_public_without_description_or_photo(language):
    content = sample_content(kind=MessageKind.RESOLVED)

    m = messages.render(content, language)

    assert ("已找到" in m.body) if language == "zh-CN" else ("found" in m.body)
    assert ("感谢" in m.body) if language == "zh-CN" else ("Thank you" in m.body)
    for detail in ("红色外套", "望京", "120", "6岁", "6-year-old"):
        assert detail not in m.body and detail not in m.sms_text
    assert m.photo_url is None


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_cancelled_says_the_alert_is_withdrawn(language):
    m = messages.render(sample_content(kind=MessageKind.CANCELLED), language)

    assert ("撤销" in m.body) if language == "zh-CN" else ("withdrawn" in m.body)
    assert "红色外套" not in m.body
    assert m.photo_url is None


def test_long_description_is_cut_with_ellipsis_and_tip_line_kept():
    content = sample_content(clothing="很长的描述" * 500, last_seen_place="地方" * 300)

    m = messages.render(content, "zh-CN")

    assert len(m.body.encode()) <= messages.PUSH_BODY_MAX_BYTES
    assert "…" in m.body
    assert m.body.endswith("如有线索请拨打110。")
    assert "张小明" in m.body


def test_an_sms_drops_clothing_height_and_link_before_it_shortens_the_place():
    content = sample_content(
        child_name="Lily Chen", clothing="red coat " * 50, last_seen_place="Park " * 60
    )

    m = messages.render(content, "en")

    assert "Lily Chen," in m.sms_text and "6-year-old" in m.sms_text and "Call 110" in m.sms_text
    assert "wearing" not in m.sms_text, "clothing goes first"
    assert "cm tall" not in m.sms_text and content.deep_link not in m.sms_text
    assert m.sms_text.count("...") == 1, "then the place is shortened; the name never was"
    assert "cm tall" in m.body and "red coat" in m.body, "the push keeps what the SMS dropped"


def test_sms_text_fits_two_parts_and_keeps_tip_line_and_link():
    content = sample_content(clothing="很长的描述" * 100)

    m = messages.render(content, "zh-CN")

    plan = sms.plan(m.sms_text, max_parts=messages.SMS_MAX_PARTS)
    assert not plan.truncated
    assert "110" in m.sms_text and content.deep_link in m.sms_text


def test_latin_sms_stays_gsm7_when_cut():
    content = sample_content(child_name="Lily", clothing="red coat " * 50, last_seen_place="Park")

    m = messages.render(content, "en")

    assert sms.plan(m.sms_text).encoding is sms.SmsEncoding.GSM7
    assert "..." in m.sms_text


def test_render_all_gives_both_languages():
    assert set(messages.render_all(sample_content())) == {"zh-CN", "en"}


def test_naive_last_seen_time_is_refused():
    with pytest.raises(ValueError):
        sample_content(last_seen_at=datetime(2024, 5, 1, 6, 30))


def test_unknown_language_is_refused():
    with pytest.raises(ValueError):
        messages.render(sample_content(), "fr")


def test_truncate_bytes_never_splits_a_character():
    cut = messages.truncate_bytes("寻人启事", 8)

    assert cut == "寻…" and len(cut.encode()) <= 8


def test_unknown_age_and_height_are_left_out():
    m = messages.render(sample_content(age_years=None, height_cm=None), "en")

    assert "year-old" not in m.body and "cm" not in m.body
    assert m.body.startswith("Zhang Xiaoming, boy")


def test_last_seen_time_is_converted_from_any_zone():
    when = datetime(2024, 5, 1, 23, 0, tzinfo=UTC)

    m = messages.render(sample_content(last_seen_at=when), "zh-CN")

    assert "5月2日07:00" in m.body
