"""The partner device API against a real database and the real Redis location index."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from alerts.app import Routes, create_app
from alerts.partners.models import Partner
from geo import areas, targeting
from geo.devices import service as devices
from geo.devices.models import Device
from ops.platform import crypto
from ops.platform.db import session_scope
from tests.factories import make_partner, partner_headers

GUANGZHOU = (23.1291, 113.2644)


@pytest.fixture
def api(database, redis_client):
    redis_client.flushdb()
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture
def key(api) -> dict[str, str]:
    return partner_headers(make_partner())


def register(api, key, external_id: str, lat: float, lon: float, **extra):
    body = {"platform": "apns", "address": "a" * 64, "lat": lat, "lon": lon, **extra}
    return api.put(f"/api/v1/partner/devices/{external_id}", json=body, headers=key)


def in_area(lat: float, lon: float, radius_km: float) -> set[int]:
    area = areas.Area.circle(lat, lon, radius_km)
    index = devices.location_index()
    found: set[int] = set()
    for shard in targeting.plan(area):
        found |= set(targeting.devices_in_shard(index, shard, area).tolist())
    return found


def test_registered_device_is_targetable_and_its_token_is_encrypted(api, key):
    res = register(api, key, "dev-1", *GUANGZHOU)
    assert res.status_code == 200, res.text
    assert res.json()["located"] is True and "address" not in res.json()
    with session_scope() as s:
        device = s.scalar(select(Device))
    assert b"aaaa" not in device.address_enc
    assert crypto.decrypt(device.address_enc) == "a" * 64
    assert in_area(*GUANGZHOU, 5) == {device.id}


def test_missing_or_wrong_scope_key_is_refused(api):
    assert register(api, {}, "x1", *GUANGZHOU).status_code == 401
    feeds_only = partner_headers(make_partner("News", scopes=("feeds:read",)))
    res = register(api, feeds_only, "x1", *GUANGZHOU)
    assert res.status_code == 403 and "devices:write" in res.json()["detail"]


def test_bulk_applies_good_rows_and_reports_bad_ones_by_index(api, key):
    for i in range(3):
        register(api, key, f"d{i}", 0.0, 0.0)
    rows = [
        {"id": "d0", "lat": GUANGZHOU[0], "lon": GUANGZHOU[1]},
        {"id": "d1", "lat": 95.0, "lon": 10.0},
        {"id": "nobody", "lat": 1.0, "lon": 1.0},
        {"id": "d2", "lat": 22.5431, "lon": 114.0579},
        {"id": "d3", "lat": 1.0, "lon": 1.0, "platform": "fcm", "address": "f" * 40},
        {"id": "d4", "lat": 1.0, "lon": 1.0, "platform": "fcm"},
        {"id": "d0", "lat": 1.0, "lon": 1.0, "at": "2999-01-01T00:00:00+00:00"},
        "not an object",
    ]
    res = api.post("/api/v1/partner/devices/bulk", json=rows, headers=key)
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["received"], body["applied"], body["registered"]) == (8, 3, 1)
    assert [(e["index"], e["field"]) for e in body["rejected"]] == [
        (1, "lat"),
        (2, "id"),
        (5, "address"),
        (6, "at"),
        (7, "row"),
    ]
    with session_scope() as s:
        ids = {d.external_id: d.id for d in s.scalars(select(Device))}
    assert ids["d0"] in in_area(*GUANGZHOU, 1)
    assert ids["d2"] not in in_area(*GUANGZHOU, 1)


def test_bulk_accepts_ten_thousand_rows_as_ndjson(api, key):
    rows = [
        {
            "id": f"n{i}",
            "lat": 23.0 + i * 1e-5,
            "lon": 113.0,
            "platform": "fcm",
            "address": f"token-{i:08d}",
        }
        for i in range(10_000)
    ]
    body = "\n".join(json.dumps(r) for r in rows).encode()
    res = api.post(
        "/api/v1/partner/devices/bulk",
        content=body,
        headers={**key, "Content-Type": "application/x-ndjson"},
    )
    assert res.status_code == 200
    assert res.json()["applied"] == 10_000 and res.json()["rejected"] == []
    assert len(in_area(23.05, 113.0, 10)) == 10_000


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"rows": 1}', "application/json", "JSON array"),
    ],
)
def test_unreadable_bulk_body_is_422_naming_the_cause(api, key, body, ctype, message):
    res = api.post(
        "/api/v1/partner/devices/bulk", content=body, headers={**key, "Content-Type": ctype}
    )
    assert res.status_code == 422 and message in res.json()["detail"][0]["message"]


def test_ndjson_reports_an_unreadable_line_by_index_and_applies_the_good_rows(api, key):
    good = {"lat": 23.13, "lon": 113.26, "platform": "fcm"}
    body = b"\n".join(
        [
            json.dumps({"id": "g1", "address": "token-00000001", **good}).encode(),
            b'{"id": "broken", "lat": 23.1',  # cut off mid-row
            b"",
            json.dumps({"id": "g2", "address": "token-00000002", **good}).encode(),
            b"[" * 5000 + b"]" * 5000,
        ]
    )
    res = api.post(
        "/api/v1/partner/devices/bulk",
        content=body,
        headers={**key, "Content-Type": "application/x-ndjson"},
    )
    assert res.status_code == 200, res.text
    assert res.json()["applied"] == 2 and res.json()["received"] == 4
    assert res.json()["rejected"] == [
        {"index": 1, "field": "row", "message": "line 2: not valid JSON"},
        {
            "index": 3,
            "field": "row",
            "message": "line 5: nested too deeply (rows are flat objects)",
        },
    ]
    assert len(in_area(23.13, 113.26, 5)) == 2


def test_an_unknown_device_opting_out_is_reported_not_a_500(api, key):
    """Found by the fuzz test once the bulk body was documented: a KeyError on the id."""
    register(api, key, "known", *GUANGZHOU)
    rows = [
        {"id": "never-registered", "lat": 23.1, "lon": 113.2, "opted_in": False},
        {"id": "known", "lat": 23.1, "lon": 113.2, "opted_in": False},
    ]
    res = api.post("/api/v1/partner/devices/bulk", json=rows, headers=key)
    assert res.status_code == 200, res.text
    assert [e["index"] for e in res.json()["rejected"]] == [0]
    assert in_area(*GUANGZHOU, 5) == set(), "the known device left targeting"


def test_oversized_bulk_body_is_413(api, key, monkeypatch):
    monkeypatch.setenv("REUNITE_BULK_MAX_BYTES", str(1024 * 1024))
    from tests.conftest import clear_caches

    clear_caches()
    res = api.post(
        "/api/v1/partner/devices/bulk",
        content=b"[" + b" " * (2 * 1024 * 1024) + b"]",
        headers={**key, "Content-Type": "application/json"},
    )
    assert res.status_code == 413


def test_stale_location_is_not_targeted(api, key):
    old = (datetime.now(UTC) - timedelta(hours=23, minutes=59)).isoformat()
    register(api, key, "old", *GUANGZHOU, at=old)
    assert len(in_area(*GUANGZHOU, 5)) == 1
    index = devices.location_index()
    later = datetime.now(UTC) + timedelta(minutes=5)
    area = areas.Area.circle(*GUANGZHOU, 5)
    assert (
        sum(
            len(targeting.devices_in_shard(index, s, area, now=later)) for s in targeting.plan(area)
        )
        == 0
    )


def test_opt_out_and_delete_remove_the_device_from_targeting(api, key):
    register(api, key, "a", *GUANGZHOU)
    register(api, key, "b", *GUANGZHOU)
    assert len(in_area(*GUANGZHOU, 5)) == 2
    register(api, key, "a", *GUANGZHOU, opted_in=False)
    assert api.delete("/api/v1/partner/devices/b", headers=key).status_code == 204
    assert in_area(*GUANGZHOU, 5) == set()
    assert api.get("/api/v1/partner/devices/b", headers=key).status_code == 404


def test_silent_devices_are_purged_from_registry_and_index(api, key):
    from geo.devices import tasks

    register(api, key, "quiet", *GUANGZHOU)
    with session_scope() as s:
        device = s.scalar(select(Device))
        device.last_contact_at = datetime.now(UTC) - timedelta(days=31)
    assert tasks.purge.run() == 1
    with session_scope() as s:
        assert s.scalar(select(Device)) is None
    assert in_area(*GUANGZHOU, 5) == set()


def test_a_plain_upload_past_one_id_chunk_lands_every_row(api, key):
    """6,000 registered devices, then their locations as plain rows (the fast decoder's path):
    more ids than one SQL IN list holds on SQLite, one array parameter on PostgreSQL."""
    n = 6_000
    token = crypto.encrypt("t" * 16)
    with session_scope() as s:
        partner_id = s.scalar(select(Partner.id))  # the test's only partner
        s.execute(
            insert(Device),
            [
                {"partner_id": partner_id, "external_id": f"p{i}", "platform": "fcm"}
                | {"address_enc": token, "locale": "zh-CN", "opted_in": True, "active": True}
                for i in range(n)
            ],
        )
    rows = [{"id": f"p{i}", "lat": 23.0 + i * 1e-6, "lon": 113.0} for i in range(n)]
    res = api.post("/api/v1/partner/devices/bulk", json=rows, headers=key)
    assert res.status_code == 200, res.text
    assert (res.json()["applied"], res.json()["rejected"]) == (n, [])
    assert len(in_area(23.0, 113.0, 5)) == n


def test_a_bad_row_among_plain_ones_is_named_by_index_and_field(api, key):
    for i in range(3):
        register(api, key, f"d{i}", 0.0, 0.0)
    rows = [
        {"id": "d0", "lat": 23.1, "lon": 113.2},
        {"id": "d1\n", "lat": 23.1, "lon": 113.2},
        {"id": "d2", "lat": 23.1, "lon": 190},
        {"id": "d1", "lat": 23.1, "lon": 113.2, "colour": "red"},
    ]
    res = api.post("/api/v1/partner/devices/bulk", json=rows, headers=key)
    assert res.status_code == 200, res.text
    assert res.json()["applied"] == 1
    assert [(e["index"], e["field"], e["message"]) for e in res.json()["rejected"]] == [
        (1, "id", "String should match pattern '^[A-Za-z0-9._:\\-]{1,128}$'"),
        (2, "lon", "Input should be less than or equal to 180"),
        (3, "colour", "Extra inputs are not permitted"),
    ]


def test_split_processes_serve_only_their_own_routes(database, redis_client):
    """`reunite api --routes ingest` takes device uploads and nothing of the officers' API;
    `--routes main` the reverse. Both answer health checks."""
    redis_client.flushdb()
    with TestClient(create_app(Routes.INGEST)) as ingest_api:
        key = partner_headers(make_partner())
        assert register(ingest_api, key, "d0", *GUANGZHOU).status_code == 200
        rows = [{"id": "d0", "lat": GUANGZHOU[0], "lon": GUANGZHOU[1]}]
        res = ingest_api.post("/api/v1/partner/devices/bulk", json=rows, headers=key)
        assert res.json()["applied"] == 1
        assert ingest_api.get("/livez").status_code == 200
        assert ingest_api.get("/api/v1/cases").status_code == 404
        assert ingest_api.get("/console/login").status_code == 404
    with TestClient(create_app(Routes.MAIN)) as main_api:
        res = main_api.post("/api/v1/partner/devices/bulk", json=rows, headers=key)
        assert res.status_code == 404
        assert main_api.get("/api/v1/partner/devices/d0", headers=key).status_code == 404
        assert main_api.get("/api/v1/cases").status_code == 401
        assert main_api.get("/livez").status_code == 200


def test_an_upload_records_contact_only_where_the_last_is_over_an_hour_old(api, key):
    register(api, key, "silent", *GUANGZHOU)
    register(api, key, "recent", *GUANGZHOU)
    long_ago = datetime.now(UTC) - timedelta(days=20)
    recently = datetime.now(UTC) - timedelta(minutes=10)
    with session_scope() as s:
        for device in s.scalars(select(Device)):
            device.last_contact_at = long_ago if device.external_id == "silent" else recently
    rows = [{"id": name, "lat": GUANGZHOU[0], "lon": GUANGZHOU[1]} for name in ("silent", "recent")]
    assert api.post("/api/v1/partner/devices/bulk", json=rows, headers=key).json()["applied"] == 2
    with session_scope() as s:
        contact = {d.external_id: d.last_contact_at for d in s.scalars(select(Device))}
    assert contact["silent"] > datetime.now(UTC) - timedelta(minutes=1)
    assert abs(contact["recent"] - recently) < timedelta(seconds=1), "unchanged within the hour"
