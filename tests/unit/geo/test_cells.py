"""H3 snapping and the size bounds that keep targeting within the 161 m WEA rule."""

import h3
import numpy as np
import pytest

from geo import areas, cells


def _cell(lat, lon, res):
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, res))


def test_largest_res10_cells_are_too_wide_for_the_wea_rule():
    # Why snap() sometimes uses resolution 11: a face-centre res-10 hexagon is ~168 m across.
    worst = max(
        cells.circumradius_m(h3.str_to_int(h3.cell_to_center_child(c, 10)))
        for c in h3.get_res0_cells()
    )
    assert 83 < worst <= cells.MAX_CELL_RADIUS_M
    assert 2 * worst > cells.WEA_OVERSHOOT_M


@pytest.mark.parametrize(
    ("lat", "lon"), [(23.13, 113.26), (40.7, -74.0), (0.0, 179.5), (89.5, 10.0), (-33.9, 151.2)]
)
def test_snapped_cell_diameter_bound_is_below_161m(lat, lon):
    cell = cells.snap(lat, lon)
    bound = int(cells.radius_bounds(np.array([cell], dtype=np.uint64))[0])
    assert cells.circumradius_m(cell) <= bound
    assert cells.overshoot_bound_m(bound) < cells.WEA_OVERSHOOT_M


def test_guangzhou_devices_stay_at_resolution_10():
    assert h3.get_resolution(h3.int_to_str(cells.snap(23.13, 113.26))) == cells.DEVICE_RES


def test_radius_bound_covers_every_cell_of_a_shard():
    rng = np.random.default_rng(7)
    for shard in (_cell(23.1, 113.3, 5), _cell(0.0, 179.9, 5), _cell(-45, 170, 5)):
        kids = list(h3.cell_to_children(h3.int_to_str(shard), 10))
        for kid in rng.choice(kids, 30):
            assert cells.circumradius_m(h3.str_to_int(kid)) <= cells.radius_bound_m(shard, 10)


def test_radius_bound_holds_next_to_pentagons():
    for pent in h3.get_pentagons(5)[:4]:
        plat, plon = h3.cell_to_latlng(pent)
        for dlat, dlon in ((0.05, 0.0), (0.0, 0.08), (-0.1, 0.1), (0.0, 0.0)):
            cell = cells.snap(plat + dlat, plon + dlon)
            bound = int(cells.radius_bounds(np.array([cell], dtype=np.uint64))[0])
            assert cells.circumradius_m(cell) <= bound


def test_vectorised_parent_matches_h3():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-80, 80, 200), rng.uniform(-180, 180, 200)
    cs = np.array([_cell(a, b, 11) for a, b in zip(lat, lon, strict=True)], dtype=np.uint64)
    expected = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), 5)) for c in cs]
    assert cells.parent(cs).tolist() == expected
    assert (cells.shard_from_code(cells.shard_code(cells.parent(cs))) == cells.parent(cs)).all()


def test_shard_extent_covers_descendant_cells():
    shard = _cell(23.1, 113.3, 5)
    slat, slon = h3.cell_to_latlng(h3.int_to_str(shard))
    kids = list(h3.cell_to_children(h3.int_to_str(shard), 10))[::97]
    worst = 0.0
    for kid in kids:
        bd = np.asarray(h3.cell_to_boundary(kid))
        worst = max(worst, areas.geodesic_distance_m(slat, slon, bd[:, 0], bd[:, 1]).max())
    assert worst <= cells.shard_extent_m(shard)


def test_ecef_round_trip_is_exact_on_the_ellipsoid():
    lat = np.array([0.0, 23.13, -89.99, 89.5, 45.0])
    lon = np.array([179.999, 113.26, 0.0, -170.0, -179.5])
    back_lat, back_lon = cells.latlon_from_ecef(cells.ecef(lat, lon))
    assert np.allclose(back_lat, lat, atol=1e-9)
    assert np.allclose(areas.wrap_lon(back_lon - lon), 0, atol=1e-9)
