"""Free text is NFC and refuses control characters and bidi overrides, naming the field; the
XML writers stay well-formed for anything accepted, and signed CAP verifies for anything accepted.

Before, a case's name could carry U+0007 or U+202E: ElementTree wrote it into CAP and Atom as
is (the XML no longer parses at the partner) and a right-to-left override made a tip line or a
name read differently from what it said.
"""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.feeds import cap, signing, wea
from alerts.feeds import service as feeds
from ops.platform.config import Settings
from ops.text import clean_line, clean_text
from tests.factories import case_payload, token
from tests.support.cap_signatures import signxml_verifies

CASES = "/api/v1/cases"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("child", "name"), "Lin\u0007 Xiaoyu"),
        (("child", "name"), "Lin\nXiaoyu"),
        (("child", "clothing"), "red\u202ejacket"),
        (("last_seen", "address"), "Beijing Road\u2066 8"),
        (("last_seen", "circumstances"), "seen near\u0000 the metro"),
        (("vehicle", "plate"), "粤A\u008512345"),
        (("child", "appearance"), "lone surrogate \ud800"),
    ],
)
def test_a_control_or_bidi_character_is_422_naming_the_field(api, path, value):
    payload = case_payload()
    payload[path[0]][path[1]] = value
    # ASCII-escaped JSON, as a hostile client would send a lone surrogate ("\ud800").
    headers = token(api, "officer1") | {"content-type": "application/json"}
    res = api.post(CASES, content=json.dumps(payload), headers=headers)
    assert res.status_code == 422, res.text
    assert [e["field"] for e in res.json()["detail"]] == [".".join(path)]
    assert value not in res.text


def test_multi_line_fields_keep_newlines_and_text_is_stored_as_nfc(api):
    payload = case_payload()
    payload["last_seen"]["circumstances"] = "first line\r\nsecond line\ttabbed"
    payload["child"]["name"] = "Zoe\u0301 Lin"  # e + combining acute: NFC makes it one é
    res = api.post(CASES, json=payload, headers=token(api, "officer1"))
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["last_seen"]["circumstances"] == "first line\nsecond line\ttabbed"
    assert body["child"]["name"] == "Zoé Lin"


def _accepted(clean, text: str) -> str | None:
    try:
        return clean(text)
    except ValueError:
        return None


texts = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60) | st.text(
    min_size=1, max_size=60
)


@cache
def _keyring() -> signing.Keyring:
    """One development key for every example (Hypothesis runs many per test)."""
    return signing.load([signing.development_key(Path(tempfile.mkdtemp()), "hypothesis")])


# No deadline: the first example makes the signing key, and signing costs a few ms a time.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(headline=texts, description=texts)
def test_cap_and_atom_are_well_formed_for_any_accepted_text(headline, description):
    head, desc = _accepted(clean_line, headline), _accepted(clean_text, description)
    if head is None or desc is None:
        return
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    document = cap.Document(
        identifier="urn:reunite:test",
        sender="psb@example.org",
        sender_name=head,
        sent=now,
        status=cap.Status.ACTUAL,
        msg_type=cap.MsgType.ALERT,
        expires=now + timedelta(hours=1),
        infos=[
            cap.Info(
                "en",
                head,
                desc,
                desc,
                "https://example.org/c/1",
                desc,
                parameters=[("EAS-ORG", "CIV"), ("CMAMtext", wea.gsm7(desc) or "x")],
            )
        ],
        area_desc=desc,
        polygon="23.0,113.0 23.0,114.0 22.0,113.5 23.0,113.0",
        circle=None,
        note=desc,
        codes=["IPAWSv1.0"],
    )
    rendered = cap.render(document)
    ET.fromstring(rendered)  # raises on malformed XML
    # Signed, it stays well-formed and its signature holds over whatever text it carries.
    signed = signing.sign(rendered, _keyring())
    ET.fromstring(signed)
    assert signxml_verifies(signed, _keyring().bundle()).findtext(f"{{{cap.CAP_NS}}}note") == (
        ET.fromstring(rendered).findtext(f"{{{cap.CAP_NS}}}note")
    )
    doc = feeds.CapDoc(
        identifier="urn:reunite:test",
        message_id="c:alert:0:1",
        case_id="c",
        variant="alert",
        sent=now,
        expires=now + timedelta(hours=1),
        area=None,
        document=document,
        signed={"en": signed.decode()},
        shown_since=now + timedelta(minutes=5),
    )
    assert doc.xml() == signed
    settings_ = Settings(cap_sender=head[:100] or "x")
    ET.fromstring(feeds.atom([doc], settings_, 1, False))
