"""Operators tune radius rules; invalid rows are named; preview counts live devices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import select
from typer.testing import CliRunner

from alerts.app import create_app
from alerts.cli import app as cli
from alerts.users.roles import Role
from geo import cells
from geo.devices import service as devices
from ops.platform.audit.models import AuditEntry
from ops.platform.db import session_scope
from tests.factories import make_agency, make_user, token

GEOD = Geod(ellps="WGS84")
CENTER = (23.1291, 113.2644)
DEFAULT = {
    "steps": [
        {"up_to_minutes": 60, "radius_km": 100},
        {"up_to_minutes": 120, "radius_km": 200},
        {"up_to_minutes": 180, "radius_km": 300},
    ],
    "max_radius_km": 500,
}


@pytest.fixture
def api(database, redis_client):
    redis_client.flushdb()
    make_agency("Ops")
    make_user("op1", Role.OPERATOR, "Ops")
    make_user("officer1", Role.OFFICER, "Ops")
    with TestClient(create_app()) as client:
        yield client


def test_default_rules_are_the_model_systems_schedule(api):
    body = api.get("/api/v1/rules", headers=token(api, "officer1")).json()
    assert body["version"] == 0
    assert [s["radius_km"] for s in body["steps"]] == [100, 200, 300]
    assert body["max_radius_km"] == 500


def test_late_arrivals_are_on_by_default_and_an_operator_turns_them_off(api):
    assert api.get("/api/v1/rules", headers=token(api, "officer1")).json()["alert_late_arrivals"]
    res = api.post("/api/v1/rules", json=DEFAULT, headers=token(api, "op1"))
    assert res.status_code == 201 and res.json()["alert_late_arrivals"] is True, res.text
    off = {**DEFAULT, "alert_late_arrivals": False, "note": "pilot without late alerts"}
    res = api.post("/api/v1/rules", json=off, headers=token(api, "op1"))
    assert res.status_code == 201, res.text
    body = api.get("/api/v1/rules", headers=token(api, "officer1")).json()
    assert body["version"] == 2 and body["alert_late_arrivals"] is False


def test_operator_stores_a_new_version_with_a_city_override_and_it_is_audited(api):
    city = [[23.0, 113.1], [23.0, 113.5], [23.3, 113.5], [23.3, 113.1]]
    rules = {
        **DEFAULT,
        "regions": [
            {
                "name": "Guangzhou core",
                "vertices": city,
                "steps": [{"up_to_minutes": 60, "radius_km": 20}],
                "max_radius_km": 100,
            }
        ],
        "note": "dense city starts small",
    }
    res = api.post("/api/v1/rules", json=rules, headers=token(api, "op1"))
    assert res.status_code == 201, res.text
    assert res.json()["version"] == 1
    preview = api.post(
        "/api/v1/rules/preview",
        json={"lat": CENTER[0], "lon": CENTER[1], "last_seen_at": datetime.now(UTC).isoformat()},
        headers=token(api, "op1"),
    ).json()
    assert [w["radius_km"] for w in preview["waves"]] == [20, 100]
    with session_scope() as s:
        assert "rules.version_created" in s.scalars(select(AuditEntry.action)).all()


@pytest.mark.parametrize(
    ("steps", "max_radius", "field"),
    [
        (
            [{"up_to_minutes": 60, "radius_km": 100}, {"up_to_minutes": 120, "radius_km": 90}],
            500,
            "steps[1].radius_km",
        ),
        ([{"up_to_minutes": -5, "radius_km": 100}], 500, "steps[0].up_to"),
        ([{"up_to_minutes": 60, "radius_km": 100}], 5000, "max_radius_km"),
        (
            [{"up_to_minutes": 60, "radius_km": 100}, {"up_to_minutes": 30, "radius_km": 200}],
            500,
            "steps[1].up_to",
        ),
    ],
)
def test_invalid_rules_are_refused_naming_the_row(api, steps, max_radius, field):
    res = api.post(
        "/api/v1/rules",
        json={"steps": steps, "max_radius_km": max_radius},
        headers=token(api, "op1"),
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["field"] == field


def test_self_intersecting_region_is_refused(api):
    bowtie = [[0, 0], [1, 1], [0, 1], [1, 0]]
    rules = {
        **DEFAULT,
        "regions": [
            {
                "name": "bad",
                "vertices": bowtie,
                "steps": [{"up_to_minutes": 60, "radius_km": 10}],
                "max_radius_km": 50,
            }
        ],
    }
    res = api.post("/api/v1/rules", json=rules, headers=token(api, "op1"))
    assert res.status_code == 422
    assert res.json()["detail"][0]["field"].startswith("regions[0].")


def test_officers_cannot_change_rules(api):
    res = api.post("/api/v1/rules", json=DEFAULT, headers=token(api, "officer1"))
    assert res.status_code == 403


def test_preview_counts_devices_newly_reached_per_wave(api):
    index = devices.location_index()
    points = []
    for d in (50, 51, 150, 250, 450, 700):
        lon, lat, _ = GEOD.fwd(CENTER[1], CENTER[0], 90, d * 1000)
        points.append((lat, lon))
    lats, lons = np.array(points).T
    index.ingest(np.arange(1, 7), cells.snap_many(lats, lons), datetime.now(UTC))
    res = api.post(
        "/api/v1/rules/preview",
        json={
            "lat": CENTER[0],
            "lon": CENTER[1],
            "last_seen_at": (datetime.now(UTC) - timedelta(minutes=10)).isoformat(),
        },
        headers=token(api, "officer1"),
    )
    body = res.json()
    assert [(w["radius_km"], w["devices_new"]) for w in body["waves"]] == [
        (100, 2),
        (200, 1),
        (300, 1),
        (500, 1),
    ]
    assert body["devices_total"] == 5
    assert body["waves"][0]["cap_circle"] == f"{CENTER[0]:.6f},{CENTER[1]:.6f} 100.000000"


def test_cli_preview_prints_waves_numbered_from_one_and_reach(api):
    result = CliRunner().invoke(
        cli,
        [
            "rules",
            "preview",
            "--lat",
            str(CENTER[0]),
            "--lon",
            str(CENTER[1]),
            "--lost-minutes-ago",
            "90",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "200 km" in result.output and "total devices targeted: 0" in result.output
    # Numbered from 1, as the console numbers them: the first wave is "wave 1", never 0.
    assert "wave 1: " in result.output and "wave 0" not in result.output
