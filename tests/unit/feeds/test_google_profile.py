"""The Google profile checker (tests/support/cap_google_profile.py) passes what Reunite writes
and catches each rule it was written from."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from alerts.feeds import cap
from tests.support.cap_google_profile import Level, assert_google_profile, check, problems
from tests.unit.feeds.test_cap import SENT, document

NS = {"c": cap.CAP_NS}


def rules(xml: bytes) -> set[str]:
    return {f.rule for f in problems(xml)}


def edited(edit: Callable[[etree._Element], None], doc: cap.Document | None = None) -> bytes:
    root = etree.fromstring(cap.render(doc or document()))
    edit(root)
    return etree.tostring(root)


def first(root: etree._Element, path: str) -> etree._Element:
    return root.find(path, NS)


def set_text(path: str, value: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        for el in root.findall(path, NS):
            el.text = value

    return edit


def remove(path: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        for el in root.findall(path, NS):
            el.getparent().remove(el)

    return edit


def remove_geometry(root: etree._Element) -> None:
    for tag in ("polygon", "circle"):
        remove(f"c:info/c:area/c:{tag}")(root)


def test_a_reunite_alert_passes_with_only_the_utc_notes():
    xml = cap.render(document())
    assert_google_profile(xml)
    notes = {f.rule for f in check(xml) if f.level is Level.INFO}
    assert notes == {"SENT_INCLUDES_UTC_TIMEZONE", "EXPIRES_INCLUDES_UTC_TIMEZONE"}


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (remove("c:info/c:web"), "WEB_IS_REQUIRED"),
        (remove("c:info/c:expires"), "EXPIRES_IS_REQUIRED"),
        (remove("c:info/c:description"), "DESCRIPTION_IS_REQUIRED"),
        (remove("c:info/c:area"), "AREA_IS_REQUIRED"),
        (remove("c:info/c:urgency"), "URGENCY_IS_REQUIRED"),
        (remove("c:info"), "INFO_IS_REQUIRED"),
        (remove_geometry, "CIRCLE_POLYGON_OR_GEOCODE_IS_REQUIRED"),
        (remove("c:info/c:senderName"), "SENDER_NAME_STRONGLY_RECOMMENDED"),
        (remove("c:info/c:instruction"), "INSTRUCTION_STRONGLY_RECOMMENDED"),
        (remove("c:info/c:contact"), "CONTACT_IS_RECOMMENDED"),
        (set_text("c:msgType", "Update"), "UPDATE_OR_CANCEL_MUST_REFERENCE"),
        (set_text("c:scope", "Private"), "SCOPE_MUST_BE_PUBLIC"),
        (set_text("c:status", "Test"), "TEST_ALERT_DISCOURAGED"),
        (set_text("c:identifier", "reunite case 1"), "INVALID_IDENTIFIER"),
        (set_text("c:sender", "a,b@example.org"), "INVALID_SENDER"),
        (set_text("c:sent", "2026-11-23T06:00:00Z"), "INVALID_DATE"),
        (set_text("c:info/c:expires", "2026-11-23T06:00:00"), "INVALID_DATE"),
        (set_text("c:info/c:urgency", "Unknown"), "UNKNOWN_URGENCY_DISCOURAGED"),
        (set_text("c:info/c:certainty", "Unknown"), "UNKNOWN_CERTAINTY_DISCOURAGED"),
        (set_text("c:info/c:web", "/c/1"), "INVALID_WEB"),
        (set_text("c:info/c:language", "zh_CN!"), "INVALID_LANGUAGE"),
        (set_text("c:info/c:event", "Missing child: " + "x" * 30), "EVENT_TOO_LONG"),
        (set_text("c:info/c:headline", "x" * 140), "HEADLINE_TOO_LONG"),
        (set_text("c:info/c:headline", "same"), "SAME_TEXT_DIFFERENT_LANGUAGE"),
        (set_text("c:info/c:description", "<b>Lin</b> is missing"), "TEXT_CONTAINS_HTML_TAGS"),
        (set_text("c:info/c:contact", "Tom &amp; Jerry"), "TEXT_CONTAINS_HTML_ENTITIES"),
        (set_text("c:info/c:resource/c:mimeType", "jpeg"), "INVALID_MIME_TYPE"),
        (set_text("c:info/c:resource/c:uri", "p/1.jpg"), "RELATIVE_URI_MISSING_DEREF_URI"),
        (set_text("c:info/c:area/c:circle", "23.1,113.2"), "INVALID_CIRCLE"),
        (set_text("c:info/c:area/c:circle", "23.1,113.2 0"), "NONZERO_CIRCLE_RADIUS_RECOMMENDED"),
        (set_text("c:info/c:area/c:polygon", "1,1 2,2 3,1 1,2"), "INVALID_POLYGON"),
        (set_text("c:info/c:area/c:polygon", "1,1 2,2 1,1"), "INVALID_POLYGON"),
        (
            set_text("c:info/c:area/c:polygon", "0,0 2,2 2,0 0,2 0,0"),
            "INVALID_POLYGON_SELF_INTERSECTION",
        ),
        (set_text("c:info[2]/c:category", "Safety"), "CATEGORIES_MUST_MATCH"),
        (set_text("c:info[2]/c:eventCode[1]/c:value", "CDW"), "EVENT_CODES_MUST_MATCH"),
        (set_text("c:info[2]/c:language", "zh-CN"), "ONE_INFO_PER_LANGUAGE"),
    ],
)
def test_each_rule_catches_its_violation(edit, rule):
    assert rule in rules(edited(edit))
    assert rule not in rules(cap.render(document()))


def test_headline_equal_to_description_and_instruction_equal_to_description_are_flagged():
    same = "Lin is missing"
    doc = document(infos=[cap.Info("en", same, same, same, "https://r/1", "110")])
    root = etree.fromstring(cap.render(doc))
    first(root, "c:info/c:headline").text = same  # the writer would prefix it
    found = rules(etree.tostring(root))
    assert {
        "HEADLINE_AND_DESCRIPTION_SHOULD_DIFFER",
        "DESCRIPTION_AND_INSTRUCTION_SHOULD_DIFFER",
    } <= found


def test_references_circular_postdated_and_malformed_are_caught():
    later = cap.Reference("alerts@reunite.example", "reunite:earlier", SENT.replace(hour=7))
    xml = cap.render(document(msg_type=cap.MsgType.UPDATE, references=[later]))
    assert "POSTDATED_REFERENCE" in rules(xml)
    itself = cap.Reference("alerts@reunite.example", "reunite:case-1:alert:0:1", SENT)
    assert "CIRCULAR_REFERENCE" in rules(
        cap.render(document(msg_type=cap.MsgType.CANCEL, references=[itself]))
    )
    earlier = cap.Reference("alerts@reunite.example", "reunite:earlier", SENT)
    update = document(msg_type=cap.MsgType.UPDATE, references=[earlier])
    malformed = edited(set_text("c:references", "alerts@reunite.example reunite:x"), update)
    assert "INVALID_REFERENCES" in rules(malformed)


def test_effective_after_expires_is_an_error():
    def edit(root: etree._Element) -> None:
        expires = first(root, "c:info/c:expires")
        effective = etree.Element(f"{{{cap.CAP_NS}}}effective")
        effective.text = "2030-01-01T00:00:00-00:00"
        expires.addprevious(effective)

    found = [f for f in check(edited(edit)) if f.rule == "EFFECTIVE_NOT_AFTER_EXPIRES"]
    assert found and found[0].level is Level.ERROR


def test_the_same_english_event_in_a_chinese_info_is_untranslated_text():
    root = etree.fromstring(cap.render(document()))
    for event in root.findall("c:info/c:event", NS):
        event.text = "Missing child"  # what the writer did before
    assert "SAME_TEXT_DIFFERENT_LANGUAGE" in rules(etree.tostring(root))
