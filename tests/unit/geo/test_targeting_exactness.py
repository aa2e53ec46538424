"""Per-device inclusion against brute-force geodesic distance (no Redis: records in memory).

A device is simulated at a true point; only its snapped cell is kept, as in production. The
targeting test must include every device inside the area and none more than 161 m outside.
"""

import h3
import numpy as np
import shapely
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from geo import areas, cells, index, targeting
from geo.areas import Area

WEA_M = cells.WEA_OVERSHOOT_M


def _devices_near_circle(area: Area, az: np.ndarray, delta: np.ndarray):
    lon, lat, _ = areas.GEOD.fwd(
        np.full(len(az), area.center_lon),
        np.full(len(az), area.center_lat),
        az,
        area.radius_m + delta,
    )
    return lat, lon


def _included(area: Area, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    cs = cells.snap_many(lat, lon)
    recs = index.make_records(np.arange(len(cs)), cs, np.zeros(len(cs), np.uint32))
    return targeting.near_area(area, recs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(-89.0, 89.0),
    lon=st.floats(-180.0, 180.0),
    radius_km=st.floats(0.5, 500.0),
    seed=st.integers(0, 2**32 - 1),
)
@example(lat=0.0, lon=179.5, radius_km=100.0, seed=1)  # across the antimeridian
@example(lat=-12.0, lon=-179.95, radius_km=300.0, seed=2)
@example(lat=89.0, lon=30.0, radius_km=200.0, seed=3)  # contains the North pole
@example(lat=-88.5, lon=-60.0, radius_km=500.0, seed=4)  # contains the South pole
@example(lat=23.13, lon=113.26, radius_km=100.0, seed=5)
def test_circle_targets_every_device_inside_and_none_beyond_161m(lat, lon, radius_km, seed):
    area = Area.circle(lat, lon, radius_km)
    rng = np.random.default_rng(seed)
    n = 300
    # Devices concentrated around the boundary, where mistakes would be.
    lat_d, lon_d = _devices_near_circle(area, rng.uniform(0, 360, n), rng.uniform(-400, 400, n))
    inc = _included(area, lat_d, lon_d)
    dist = areas.geodesic_distance_m(lat, lon, lat_d, lon_d) - area.radius_m
    assert inc[dist <= 0].all(), "a device inside the area was missed"
    assert (dist[inc] <= WEA_M).all(), f"included a device {dist[inc].max():.1f} m outside"


def test_device_outside_by_200m_is_not_targeted():
    area = Area.circle(23.13, 113.26, 100)
    lat, lon = _devices_near_circle(area, np.linspace(0, 360, 90), np.full(90, 200.0))
    assert not _included(area, lat, lon).any()


def test_device_inside_by_1m_is_targeted():
    area = Area.circle(23.13, 113.26, 100)
    lat, lon = _devices_near_circle(area, np.linspace(0, 360, 90), np.full(90, -1.0))
    assert _included(area, lat, lon).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(-70.0, 70.0),
    lon=st.floats(-180.0, 180.0),
    w=st.floats(0.05, 3.0),
    h=st.floats(0.05, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
@example(lat=10.0, lon=179.8, w=1.0, h=1.0, seed=0)  # across the antimeridian
@example(lat=69.0, lon=-20.0, w=3.0, h=1.0, seed=1)
def test_polygon_targets_every_device_inside_and_none_beyond_161m(lat, lon, w, h, seed):
    verts = [(lat, lon), (lat, lon + w), (lat + h, lon + w * 0.6), (lat + h * 0.7, lon - w * 0.3)]
    verts = [(a, float(areas.wrap_lon(b))) for a, b in verts]
    area = Area.from_vertices(verts)
    rng = np.random.default_rng(seed)
    # Sample points along the edges, pushed in or out by up to 400 m.
    ring = np.asarray(shapely.segmentize(area.polygon_m.exterior, 500).coords)
    pick = ring[rng.integers(0, len(ring), 300)]
    jitter = rng.uniform(-400, 400, (300, 2))
    x, y = pick[:, 0] + jitter[:, 0], pick[:, 1] + jitter[:, 1]
    lon_d, lat_d = area.frame.transform(x, y, direction="INVERSE")
    lon_d = np.asarray(areas.wrap_lon(lon_d))
    inc = _included(area, lat_d, lon_d)
    # Brute force in lon/lat, where the polygon's edges are defined.
    inside = shapely.contains_xy(area.polygon, lon_d, lat_d)
    outside_m = shapely.distance(area.polygon_m, shapely.points(x, y))
    assert inc[inside].all(), "a device inside the polygon was missed"
    assert (outside_m[inc] <= WEA_M).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(-89.5, 89.5),
    lon=st.floats(-180.0, 180.0),
    radius_km=st.floats(1.0, 500.0),
    seed=st.integers(0, 2**32 - 1),
)
@example(lat=0.0, lon=179.5, radius_km=100.0, seed=0)
@example(lat=89.5, lon=0.0, radius_km=100.0, seed=0)
def test_plan_covers_the_shard_of_every_device_that_may_be_targeted(lat, lon, radius_km, seed):
    area = Area.circle(lat, lon, radius_km)
    planned = {sp.cell: sp.interior for sp in targeting.plan(area)}
    rng = np.random.default_rng(seed)
    n = 400
    lon_d, lat_d, _ = areas.GEOD.fwd(
        np.full(n, lon),
        np.full(n, lat),
        rng.uniform(0, 360, n),
        np.sqrt(rng.uniform(0, 1, n)) * (area.radius_m + 150),
    )
    cs = cells.snap_many(lat_d, lon_d)
    dist = areas.geodesic_distance_m(lat, lon, lat_d, lon_d)
    for cell, shard, d in zip(cs, cells.parent(cs), dist, strict=True):
        if d <= area.radius_m:
            assert int(shard) in planned
        if planned.get(int(shard)):
            # An interior shard's devices are taken untested: they must all be inside.
            assert d <= area.radius_m, f"device {d - area.radius_m:.0f} m outside, cell {cell}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(-60.0, 60.0),
    lon=st.floats(-179.0, 179.0),
    radius_km=st.floats(60.0, 300.0),
    earlier_share=st.floats(0.2, 0.8),
    seed=st.integers(0, 2**32 - 1),
)
def test_topic_cells_lie_inside_the_wave_and_outside_every_earlier_wave(
    lat, lon, radius_km, earlier_share, seed
):
    """A topic reaches every device of its cell: so each device cell of a topic shard must lie
    wholly inside the wave's area (no overshoot at all) and outside the earlier wave's area
    (nobody alerted twice); every other device goes per token through the exact test above."""
    area = Area.circle(lat, lon, radius_km)
    earlier = Area.circle(lat, lon, radius_km * earlier_share)
    topics = targeting.topic_cells(targeting.plan(area), targeting.covered_cells([earlier]))
    rng = np.random.default_rng(seed)
    for shard in rng.permutation(topics)[:5]:
        children = h3.cell_to_children(h3.int_to_str(int(shard)), cells.DEVICE_RES)
        for child in rng.choice(children, size=20, replace=False):
            pts = np.array(h3.cell_to_boundary(child))
            d = areas.geodesic_distance_m(lat, lon, pts[:, 0], pts[:, 1])
            assert (d <= area.radius_m).all(), "a topic would alert outside the area"
            assert (d > earlier.radius_m).all(), "a topic would alert a device told before"
