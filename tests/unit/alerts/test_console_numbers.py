"""The console writes numbers and message labels the way people read them."""

from __future__ import annotations

from alerts.console import i18n, views


def test_numbers_are_grouped_by_thousands_in_both_languages():
    for lang in i18n.LANGUAGES:
        assert i18n.number(115_499, lang) == "115,499"
        assert i18n.number(1_147, lang) == "1,147"
        assert i18n.number(999, lang) == "999"
    assert i18n.number(None) == "—"


def test_messages_are_labelled_by_kind_and_wave_from_one():
    en = i18n.translator("en")
    zh = i18n.translator("zh-CN")
    assert views.message_label(en, "alert", 1, {"radius_km": 200.0}) == "Alert · wave 2 · 200 km"
    assert views.message_label(zh, "alert", 0, {"radius_km": 100.0}) == "预警 · 第 1 波 · 100 公里"
    assert (
        views.message_label(en, "alert", 2, {"radius_km": None}) == "Alert · wave 3 · custom area"
    )
    # An update or closing notice goes to everyone alerted so far: no wave of its own.
    assert views.message_label(en, "resolved", 0, None) == "Found notice"


def test_failed_counts_every_target_refused_for_good():
    counts = views.Counts.of(
        {"targeted": 10, "sent": 5, "failed": 1, "dead": 2, "dead_lettered": 1}
    )
    assert (counts.targeted, counts.sent, counts.failed) == (10, 5, 4)
