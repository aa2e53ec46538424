"""Console maps and address lookup: the geocode endpoint (auth, errors, caps, no logging of the
query), the map data of the case page and dashboard, the vendored assets, and that every
console page loads scripts and styles from Reunite alone (TestClient over the real app)."""

from __future__ import annotations

import gzip
import json
import logging
import re
from urllib.parse import urlsplit

from alerts.cases.models import Case
from alerts.users.roles import Role
from geo.waves import service as waves
from ops.platform import config
from ops.platform.clock import utcnow
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis
from tests.factories import make_user
from tests.integration.console.conftest import csrf_of, login, login_with_totp
from tests.integration.console.test_console_security import post_case

ASSET = re.compile(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]*)"', re.IGNORECASE)


def geocode(client, body, page="/console/cases/new"):
    """POST a lookup as map.js does: JSON body, CSRF token in the header."""
    token = csrf_of(client.get(page).text)
    return client.post(
        "/console/geocode",
        content=body if isinstance(body, bytes) else json.dumps(body),
        headers={"content-type": "application/json", "x-csrf-token": token},
    )


def set_language(client, language: str) -> None:
    token = csrf_of(client.get("/console/").text)
    client.post(
        "/console/language",
        data={"language": language, "next": "/console/", "csrf_token": token},
        follow_redirects=False,
    )


def approved_case(console) -> str:
    """A case officer1 submitted and sup2 approved; nobody is signed in afterwards."""
    login(console, "officer1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    console.cookies.clear()
    login_with_totp(console, "sup2")
    review = console.get(f"/console/cases/{case_id}/review")
    approved = console.post(
        f"/console/cases/{case_id}/approve",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    console.cookies.clear()
    return case_id


def plan_and_start_first_wave(case_id: str) -> None:
    """What the dispatch worker does on approval (plan the waves, start the first), inline."""
    with session_scope() as s:
        planned = waves.plan(s, s.get(Case, case_id), utcnow())
        planned[0].status, planned[0].started_at = "started", utcnow()


def first_wave_id(case_id: str) -> int:
    with session_scope() as s:
        return waves.waves_of(s, case_id)[0].id


def test_geocode_finds_a_city_by_chinese_or_english_name_in_the_sessions_language(console):
    login(console, "officer1")
    res = geocode(console, {"q": "广州"})
    assert res.status_code == 200, res.text
    first = res.json()["results"][0]
    assert (first["name"], first["province"]) == ("广州", "广东")
    assert abs(first["lat"] - 23.12) < 0.05 and abs(first["lon"] - 113.25) < 0.05
    assert res.headers["cache-control"] == "no-store"
    set_language(console, "en")
    first = geocode(console, {"q": "Guangzhou"}).json()["results"][0]
    assert (first["name"], first["province"], first["label"]) == (
        "Guangzhou",
        "Guangdong",
        "Guangzhou, Guangdong, China",
    )


def test_geocode_needs_a_police_session_and_its_csrf_token(console):
    anonymous = console.post("/console/geocode", json={"q": "广州"})
    assert anonymous.status_code == 403 and "results" not in anonymous.text
    login(console, "officer1")
    no_token = console.post("/console/geocode", json={"q": "广州"})
    assert no_token.status_code == 403
    console.cookies.clear()
    login_with_totp(console, "ops1")
    operator = geocode(console, {"q": "广州"}, page="/console/")
    assert operator.status_code == 403


def test_a_bad_lookup_is_a_422_naming_the_field(console):
    login(console, "officer1")
    for body, field, kind in (
        ({"q": "   "}, "q", "missing"),
        ({}, "q", "missing"),
        ({"q": "广" * 201}, "q", "too_long"),
        ({"q": "广州", "limit": "many"}, "limit", "int_type"),
        (b"q=guangzhou", "body", "json_invalid"),
    ):
        res = geocode(console, body)
        assert res.status_code == 422, (body, res.text)
        detail = res.json()["detail"]
        assert detail[0]["field"] == field and detail[0]["type"] == kind
        assert detail[0]["message"]


def test_geocode_results_are_capped_and_the_query_is_never_logged(console, monkeypatch, caplog):
    monkeypatch.setenv("REUNITE_GEOCODER_MAX_RESULTS", "3")
    config.get_settings.cache_clear()
    login(console, "officer1")
    caplog.set_level(logging.DEBUG)
    res = geocode(console, {"q": "广", "limit": 50})
    assert res.status_code == 200 and len(res.json()["results"]) == 3
    assert geocode(console, {"q": "Xinhua Road 88 Tianhe 广州"}).status_code == 200
    assert "Xinhua Road" not in caplog.text and "广" not in caplog.text


def test_an_unreachable_network_geocoder_answers_an_error_naming_the_cause(console, monkeypatch):
    # A geopy provider (Nominatim) pointed at a closed local port: a real connection refusal.
    monkeypatch.setenv("REUNITE_GEOCODER", "nominatim")
    monkeypatch.setenv("REUNITE_GEOCODER_OPTIONS", '{"domain": "127.0.0.1:9", "scheme": "http"}')
    monkeypatch.setenv("REUNITE_GEOCODER_TIMEOUT_S", "2")
    config.get_settings.cache_clear()
    login(console, "officer1")
    res = geocode(console, {"q": "广州"})
    assert res.status_code == 502
    assert res.json()["detail"] == "地址查询失败：地址服务无法连接"


def test_the_case_page_map_draws_every_wave_ring_and_the_sightings(console):
    case_id = approved_case(console)
    login(console, "officer1")
    page = console.get(f"/console/cases/{case_id}")
    assert (
        'id="case-area-map"' in page.text
        and f'data-src="/console/cases/{case_id}/map"' in page.text
    )
    assert console.get(f"/console/cases/{case_id}/map").json()["rings"] == []
    plan_and_start_first_wave(case_id)
    get_redis().delete(waves.stats_key(first_wave_id(case_id)))  # wave ids repeat per database
    data = console.get(f"/console/cases/{case_id}/map").json()
    assert [r["radius_km"] for r in data["rings"]] == [100, 200, 300, 500]
    assert [r["current"] for r in data["rings"]] == [True, False, False, False]
    first = data["rings"][0]
    assert first["center"] == [23.1291, 113.2644] and first["status"] == "started"
    # Live counts: what the wave targeted so far, in the ring's label as well.
    assert first["targeted"] == 0 and first["label"] == "第 1 波 100 km · 当前 · 已定向 0 台设备"
    get_redis().hset(waves.stats_key(first_wave_id(case_id)), "targeted", 12345)
    first = console.get(f"/console/cases/{case_id}/map").json()["rings"][0]
    assert first["targeted"] == 12345 and first["label"].endswith("已定向 12,345 台设备")
    assert len(first["polygon"]) == 96
    # The polygon is the geodesic circle: every vertex is about 100 km from the centre.
    from geopy.distance import geodesic

    for lat, lon in first["polygon"][::12]:
        assert abs(geodesic((23.1291, 113.2644), (lat, lon)).km - 100) < 1
    assert [p["kind"] for p in data["points"]] == ["last_seen"]
    token = csrf_of(page.text)
    when = re.search(r'name="last_seen_at" type="datetime-local" value="([^"]+)"', page.text)
    sighting = console.post(
        f"/console/cases/{case_id}/sightings",
        data={"at": when.group(1), "lat": "23.20", "lon": "113.30", "csrf_token": token},
        follow_redirects=False,
    )
    assert sighting.status_code == 303, sighting.text
    data = console.get(f"/console/cases/{case_id}/map").json()
    assert [p["kind"] for p in data["points"]] == ["original", "sighting", "last_seen"]
    assert data["points"][0]["lat"] == 23.1291 and data["points"][1]["lat"] == 23.2
    # The first wave went out before the sighting: still drawn, marked superseded; the
    # schedule that never started is gone, and the new one is centred on the sighting.
    old = [r for r in data["rings"] if r["superseded"]]
    new = [r for r in data["rings"] if not r["superseded"]]
    assert [(r["radius_km"], r["status"]) for r in old] == [(100, "started")]
    assert new and all(r["center"] == [23.2, 113.3] for r in new)


def test_the_dashboard_map_shows_active_cases_with_links_for_police_only(console):
    case_id = approved_case(console)
    login(console, "officer1")
    assert 'id="dashboard-map"' in console.get("/console/").text
    points = console.get("/console/dashboard/map").json()["points"]
    assert [(p["kind"], p["href"]) for p in points] == [("case", f"/console/cases/{case_id}")]
    console.cookies.clear()
    login_with_totp(console, "ops1")
    points = console.get("/console/dashboard/map").json()["points"]
    assert len(points) == 1 and "href" not in points[0]
    assert "Lin" not in json.dumps(points)


def test_every_console_page_loads_scripts_and_styles_from_reunite_alone(console):
    login(console, "officer1")
    draft = post_case(console, action="draft").headers["location"]
    to_approve = post_case(console).headers["location"].rsplit("/", 1)[-1]
    to_review = post_case(console).headers["location"].rsplit("/", 1)[-1]
    console.cookies.clear()
    login_with_totp(console, "sup2")
    pages = {"review": console.get(f"/console/cases/{to_review}/review")}
    approved = console.post(
        f"/console/cases/{to_approve}/approve",
        data={"csrf_token": csrf_of(pages["review"].text)},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    console.cookies.clear()
    login(console, "officer1")
    for path in ("/console/", "/console/cases/new", f"/console/cases/{to_approve}", draft):
        pages[path] = console.get(path)
    console.cookies.clear()
    login_with_totp(console, "ops1")
    rules = console.get("/console/rules")
    pages["/console/rules"] = rules
    pages["rules preview"] = console.post(
        "/console/rules/preview",
        data={"lat": "23.1", "lon": "113.3", "minutes": "30", "csrf_token": csrf_of(rules.text)},
    )
    pages["/console/partners"] = console.get("/console/partners")
    console.cookies.clear()
    pages["/console/login"] = console.get("/console/login")
    seen = set()
    for name, res in pages.items():
        assert res.status_code == 200, (name, res.status_code)
        html = res.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{name}: inline script"
        assert "<style" not in html and " style=" not in html, f"{name}: inline style"
        for url in ASSET.findall(html):
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc and url.startswith("/"), (name, url)
            seen.add(url)
    assert {
        "/console/static/vendor/leaflet/leaflet.css",
        "/console/static/map/map.css",
        "/console/static/map/map.js",
    } <= seen
    for url in seen - {u for u in seen if "/photos/" in u}:
        assert console.get(url).status_code == 200, url
    for name in ("review", "rules preview"):
        assert 'class="map" id="' in pages[name].text and "<noscript>" in pages[name].text


def test_map_assets_are_served_compressed_and_nothing_outside_them(console):
    res = console.get("/console/static/basemap/china.geojson", headers={"accept-encoding": "gzip"})
    assert res.status_code == 200 and res.headers["content-encoding"] == "gzip"
    assert res.headers["content-type"] == "application/geo+json"
    assert res.json()["type"] == "FeatureCollection"  # httpx undid the gzip
    raw = console.get(
        "/console/static/basemap/china.geojson", headers={"accept-encoding": "identity"}
    )
    assert "content-encoding" not in raw.headers and len(gzip.compress(raw.content)) < len(
        raw.content
    )
    assert console.get("/console/static/vendor/leaflet/images/marker-icon.png").status_code == 200
    for bad in (
        "/console/static/vendor/leaflet/LICENSE",
        "/console/static/vendor/../web.py",
        "/console/static/map/%2e%2e/%2e%2e/web.py",
        "/console/static/basemap/other.geojson",
    ):
        assert console.get(bad).status_code == 404, bad


def test_the_new_case_form_still_posts_typed_coordinates_without_the_map(console):
    make_user("officer2", Role.OFFICER, "Guangzhou")
    login(console, "officer2")
    page = console.get("/console/cases/new").text
    assert 'id="case-map"' in page and 'id="address-search"' in page
    # The picker's parts are hidden until map.js shows them; the search box has no name, so
    # it is never posted with the case.
    assert re.search(r'id="address-lookup" hidden', page)
    assert not re.search(r'id="address-search"[^>]*\bname=', page)
    res = post_case(console, action="draft", lat="22.5431", lon="114.0579")
    assert res.status_code == 303
    assert "22.54310" in console.get(res.headers["location"]).text


def test_configured_tiles_replace_the_basemap_and_only_their_host_is_allowed(console, monkeypatch):
    monkeypatch.setenv("REUNITE_MAP_TILE_URL", "https://{s}.tiles.police.internal/{z}/{x}/{y}.png")
    monkeypatch.setenv("REUNITE_MAP_TILE_ATTRIBUTION", "© Provincial mapping bureau")
    config.get_settings.cache_clear()
    login(console, "officer1")
    page = console.get("/console/cases/new")
    cfg = json.loads(re.search(r"id=\"case-map\"[^>]*data-config='([^']*)'", page.text).group(1))
    assert cfg["tiles"] == "https://{s}.tiles.police.internal/{z}/{x}/{y}.png"
    assert cfg["tilesAttribution"] == "© Provincial mapping bureau"
    assert cfg["basemap"] is None and cfg["bounds"] is None
    csp = page.headers["content-security-policy"]
    img = next(d for d in csp.split("; ") if d.startswith("img-src"))
    assert img == "img-src 'self' data: https://*.tiles.police.internal"
    assert "connect-src 'self'" in csp and "script-src 'self'" in csp
