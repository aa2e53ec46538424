"""Geodesic areas: circles on WGS84, antimeridian and pole handling, CAP strings, validation."""

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import areas
from geo.areas import Area, AreaError


def _ring_points(area: Area, radius_m: float, n: int = 720) -> tuple[np.ndarray, np.ndarray]:
    lon, lat, _ = areas.GEOD.fwd(
        np.full(n, area.center_lon),
        np.full(n, area.center_lat),
        np.linspace(0, 360, n),
        np.full(n, radius_m),
    )
    return lat, lon


@pytest.mark.parametrize("lat", [0.0, 45.0, 70.0, -60.0])
def test_100km_circle_is_100km_at_any_latitude(lat):
    area = Area.circle(lat, 10.0, 100)
    blat, blon = _ring_points(area, 100_000)
    d = areas.geodesic_distance_m(lat, 10.0, blat, blon)
    assert np.allclose(d, 100_000, atol=0.01)
    ilat, ilon = _ring_points(area, 99_990, 4)
    assert all(area.contains(a, b) for a, b in zip(ilat, ilon, strict=True))


@pytest.mark.parametrize(
    ("lat", "lon", "radius_km"),
    [
        (23.13, 113.26, 100),
        (0.0, 179.5, 100),
        (60.0, -179.9, 500),
        (89.5, 10.0, 100),
        (-89.9, 0.0, 500),
        (-33.9, 151.2, 300),
    ],
)
def test_polygon_contains_every_point_of_the_circle(lat, lon, radius_km):
    area = Area.circle(lat, lon, radius_km)
    geom = area.polygon
    assert geom.is_valid
    blat, blon = _ring_points(area, radius_km * 1000 - 0.01)
    assert shapely.intersects_xy(geom, areas.wrap_lon(blon), blat).all()
    # ...and it is tight: nothing beyond radius + CAP slack (+ a little for the pole edge).
    far_lat, far_lon = _ring_points(area, radius_km * 1000 + areas.CAP_EDGE_SLACK_M + 20)
    if not area.contains_pole:
        assert not shapely.contains_xy(geom, far_lon, far_lat).any()


def test_circle_across_antimeridian_is_split_in_two_parts():
    area = Area.circle(0.0, 179.5, 100)
    assert area.polygon.geom_type == "MultiPolygon"
    assert len(area.cap_polygons()) == 2
    assert shapely.contains_xy(area.polygon, -179.8, 0.0)
    assert shapely.contains_xy(area.polygon, 179.2, 0.0)
    with pytest.raises(AreaError, match="antimeridian"):
        area.cap_polygon()


def test_circle_near_pole_contains_the_pole():
    area = Area.circle(89.5, 10.0, 100)
    assert area.contains_pole == 1
    assert area.contains(90.0, 0.0)
    assert shapely.contains_xy(area.polygon, -170.0, 89.95)
    assert area.contains(89.8, -170.0)


def test_cap_circle_has_six_decimals():
    assert Area.circle(23.13, 113.26, 100).cap_circle() == "23.130000,113.260000 100.000000"


def test_cap_polygon_is_closed_with_at_least_four_pairs():
    text = Area.circle(23.13, 113.26, 100).cap_polygon()
    pairs = text.split(" ")
    assert len(pairs) >= 4
    assert pairs[0] == pairs[-1]
    for pair in pairs:
        lat, lon = pair.split(",")
        assert len(lat.split(".")[1]) == 6 and len(lon.split(".")[1]) == 6


def test_manual_polygon_keeps_its_vertices_in_cap():
    area = Area.from_vertices([(22.0, 113.0), (22.0, 114.0), (23.0, 114.0), (23.0, 113.0)])
    pairs = area.cap_polygon().split(" ")
    assert len(pairs) == 5 and pairs[0] == pairs[-1]
    assert "22.000000,113.000000" in pairs


def test_manual_polygon_across_antimeridian_takes_the_short_way():
    area = Area.from_vertices([(10, 179), (10, -179), (12, -179), (12, 179)])
    assert area.contains(11.0, 179.9)
    assert area.contains(11.0, -179.9)
    assert not area.contains(11.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lat": 91, "lon": 0, "radius_km": 10}, "center_lat"),
        ({"lat": 0, "lon": -181, "radius_km": 10}, "center_lon"),
        ({"lat": 0, "lon": 0, "radius_km": 0}, "radius_km"),
        ({"lat": 0, "lon": 0, "radius_km": -5}, "radius_km"),
        ({"lat": float("nan"), "lon": 0, "radius_km": 5}, "center_lat"),
    ],
)
def test_invalid_circle_names_the_field(kwargs, field):
    with pytest.raises(AreaError) as exc:
        Area.circle(**kwargs)
    assert exc.value.field == field
    assert str(exc.value).startswith(field)


def test_self_intersecting_polygon_is_refused():
    with pytest.raises(AreaError, match="vertices: polygon is invalid"):
        Area.from_vertices([(0, 0), (1, 1), (0, 1), (1, 0)])


def test_polygon_vertex_out_of_range_names_the_vertex():
    with pytest.raises(AreaError) as exc:
        Area.from_vertices([(0, 0), (1, 1), (95, 1)])
    assert exc.value.field == "vertices[2].lat"


def test_polygon_around_a_pole_is_refused():
    with pytest.raises(AreaError, match="pole"):
        Area.from_vertices([(80, 0), (80, 120), (80, -120)])


@settings(max_examples=40, deadline=None)
@given(
    lat=st.floats(-89.9, 89.9),
    lon=st.floats(-180, 180),
    radius_km=st.floats(1, 500),
    az=st.floats(0, 360),
    delta=st.floats(-2000, 2000),
)
def test_distance_outside_matches_geodesic_distance(lat, lon, radius_km, az, delta):
    area = Area.circle(lat, lon, radius_km)
    plon, plat, _ = areas.GEOD.fwd(lon, lat, az, radius_km * 1000 + delta)
    expected = max(0.0, delta)
    assert area.distance_outside_m(plat, plon) == pytest.approx(expected, abs=0.01)
