"""The live-area check and the task message of late arrivals (pure: no Redis, no database)."""

from __future__ import annotations

import json

import numpy as np
from pyproj import Geod

from geo import late

GEOD = Geod(ellps="WGS84")
CENTER = (23.1291, 113.2644)


def place(distance_km: float, azimuth: float = 45.0) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(CENTER[1], CENTER[0], azimuth, distance_km * 1000)
    return lat, lon


def test_live_area_check_matches_the_exact_geometry():
    circle = late.LiveArea.build("c", 1, late.areas.Area.circle(*CENTER, 100))
    lats = np.array([place(99.9)[0], place(100.1)[0], place(50, 200)[0], -23.1])
    lons = np.array([place(99.9)[1], place(100.1)[1], place(50, 200)[1], 113.3])
    assert circle.inside(lats, lons).tolist() == [0, 2]
    square = late.LiveArea.build(
        "p", 2, late.areas.Area.from_vertices([(23, 113), (23, 114), (24, 114), (24, 113)])
    )
    assert square.inside(
        np.array([23.5, 24.5, 23.5]), np.array([113.5, 113.5, 179.0])
    ).tolist() == [0]


def test_one_upload_in_overlapping_areas_packs_each_device_once_per_case():
    found = [
        late.Arrivals("a", 1, np.array([5, 9, 2**40])),
        late.Arrivals("b", 2, np.array([9, 11])),
    ]
    ids, cases = late.encode_arrivals(found)
    back = late.decode_arrivals(ids, json.loads(json.dumps(cases)))
    assert [(x.case_id, x.wave_id, x.device_ids.tolist()) for x in back] == [
        ("a", 1, [5, 9, 2**40]),
        ("b", 2, [9, 11]),
    ]
