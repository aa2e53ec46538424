"""Snapping device coordinates to H3 cells, and the size bounds targeting relies on.

A device's raw coordinate is never stored: only the H3 cell it falls in. Targeting includes a
device when its cell could hold a point of the area, so no device inside is ever missed, and an
included device is at most one cell diameter outside. The US WEA rule allows 161 m.

Resolution 10 alone does not meet that rule everywhere. Its hexagons have a circumradius of
67-84 m depending on where they sit on the icosahedron (measured in tests), so the largest
ones are ~168 m across. ``snap`` therefore keeps resolution 10 (~76 m edge, the coarsest
privacy-friendly choice) wherever its cells are at most ``DEVICE_RADIUS_LIMIT_M`` in
circumradius, and uses resolution 11 (~29 m edge) in the rest (about half the globe; Guangdong
and New York stay at 10). The overshoot is then at most 2 * 79 m + slack < 161 m.

Shards are resolution-5 cells (~252 km^2, ~10 km edge): a 100 km circle touches ~150 of them
and a 500 km one ~3,500, each a few thousand to tens of thousands of devices in a dense
province, which is a good unit of fan-out work (one Redis GET, well under 100 ms of numpy).
Resolution 4 would make a shard ~7x larger and put far more devices in boundary shards, where
each device needs a distance test; resolution 6 would make plans of ~25,000 shards.
"""

from __future__ import annotations

import math
from functools import lru_cache

import h3
import numpy as np
from h3.api import basic_int as h3_int

from geo import areas

DEVICE_RES = 10
FINE_RES = 11
SHARD_RES = 5
WEA_OVERSHOOT_M = 161.0
# A resolution-10 cell is used only when its circumradius bound is at most this many metres.
DEVICE_RADIUS_LIMIT_M = 79
# Cell sizes vary by < 0.1 m inside one shard (measured); this margin covers that and rounding.
RADIUS_MARGIN_M = 0.5
# Worst circumradius of any resolution-10 cell (measured at the icosahedron face centres: 83.94).
MAX_CELL_RADIUS_M = 85
# Descendant cells of an aperture-7 parent overhang its hexagon (measured ratio <= 1.045).
SHARD_OVERHANG = 1.15
# Worst circumradius of a resolution-5 cell is 84 * 7**2.5 = 10.9 km; this bounds every extent.
MAX_SHARD_EXTENT_M = 11_000 * SHARD_OVERHANG + MAX_CELL_RADIUS_M

# WGS84 constants for geodetic -> ECEF (points on the ellipsoid, height 0).
_A = 6_378_137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)

_RES_SHIFT = 52
_MODE_CELL = 1 << 59


def cell_res(cells: np.ndarray) -> np.ndarray:
    """Resolution of each H3 cell (vectorised)."""
    return ((np.asarray(cells, dtype=np.uint64) >> np.uint64(_RES_SHIFT)) & np.uint64(15)).astype(
        np.int64
    )


def parent(cells: np.ndarray, res: int = SHARD_RES) -> np.ndarray:
    """H3 parent at ``res`` of every cell (vectorised bit arithmetic, same as h3.cell_to_parent)."""
    cells = np.asarray(cells, dtype=np.uint64)
    low = np.uint64((1 << (45 - 3 * res)) - 1)  # digits below res are set to 7 (unused)
    cleared = cells & ~np.uint64(15 << _RES_SHIFT)
    return (cleared | np.uint64(res << _RES_SHIFT)) | low


def shard_code(shards: np.ndarray) -> np.ndarray:
    """Pack resolution-5 shard cells into 22-bit ints (base cell + 5 digits), for compact maps."""
    bits = 7 + 3 * SHARD_RES
    shift = np.uint64(45 - 3 * SHARD_RES)
    return ((np.asarray(shards, dtype=np.uint64) >> shift) & np.uint64((1 << bits) - 1)).astype(
        np.uint32
    )


def shard_from_code(codes: np.ndarray) -> np.ndarray:
    """Inverse of ``shard_code``."""
    shift = 45 - 3 * SHARD_RES
    head = np.uint64(_MODE_CELL | (SHARD_RES << _RES_SHIFT) | ((1 << shift) - 1))
    return (np.asarray(codes, dtype=np.uint64) << np.uint64(shift)) | head


def ecef(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Earth-centred coordinates in metres of points on the WGS84 ellipsoid, shape (n, 3)."""
    phi, lam = np.radians(lat), np.radians(lon)
    sin_phi = np.sin(phi)
    n = _A / np.sqrt(1 - _E2 * sin_phi * sin_phi)
    cos_phi = np.cos(phi)
    return np.column_stack(
        [n * cos_phi * np.cos(lam), n * cos_phi * np.sin(lam), n * (1 - _E2) * sin_phi]
    )


def latlon_from_ecef(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``ecef`` for points on the ellipsoid (exact closed form at height 0)."""
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    lon = np.degrees(np.arctan2(y, x))
    lat = np.degrees(np.arctan2(z, (1 - _E2) * np.hypot(x, y)))
    return lat, lon


def circumradius_m(cell: int) -> float:
    """Largest geodesic distance from the cell's centre to its boundary (exact, slow)."""
    text = h3.int_to_str(int(cell))
    lat, lon = h3.cell_to_latlng(text)
    bd = np.asarray(h3.cell_to_boundary(text))
    return float(areas.geodesic_distance_m(lat, lon, bd[:, 0], bd[:, 1]).max())


@lru_cache(maxsize=200_000)
def radius_bound_m(shard: int, res: int) -> int:
    """Whole metres bounding the circumradius of any ``res`` cell in ``shard``."""
    if h3.is_pentagon(h3.int_to_str(shard)):
        # Cells around a pentagon are distorted most; use the global worst case there.
        return math.ceil(MAX_CELL_RADIUS_M / math.sqrt(7) ** (res - DEVICE_RES))
    child = h3.str_to_int(h3.cell_to_center_child(h3.int_to_str(shard), res))
    return math.ceil(circumradius_m(child) + RADIUS_MARGIN_M)


@lru_cache(maxsize=200_000)
def shard_extent_m(shard: int) -> float:
    """Bound on the distance from the shard's centre to any point of a descendant cell."""
    return circumradius_m(shard) * SHARD_OVERHANG + MAX_CELL_RADIUS_M


def device_res(shard: int) -> int:
    """Resolution to store devices at in this shard so the 161 m rule holds."""
    return DEVICE_RES if radius_bound_m(shard, DEVICE_RES) <= DEVICE_RADIUS_LIMIT_M else FINE_RES


def snap(lat: float, lon: float) -> int:
    """The cell (as int) a device at (lat, lon) is stored as; the coordinate is then dropped."""
    cell = h3.str_to_int(h3.latlng_to_cell(lat, lon, DEVICE_RES))
    shard = int(parent(np.array([cell], dtype=np.uint64))[0])
    if device_res(shard) == DEVICE_RES:
        return cell
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, FINE_RES))


def snap_many(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """``snap`` for many points: one h3 call per point, the shard test once per shard."""
    lat_list, lon_list = np.asarray(lats).tolist(), np.asarray(lons).tolist()
    to_cell = h3_int.latlng_to_cell
    out = np.fromiter(
        (to_cell(a, b, DEVICE_RES) for a, b in zip(lat_list, lon_list, strict=True)),
        dtype=np.uint64,
        count=len(lat_list),
    )
    shards, inverse = np.unique(parent(out), return_inverse=True)
    fine_shard = np.fromiter(
        (device_res(int(s)) == FINE_RES for s in shards.tolist()), dtype=bool, count=len(shards)
    )
    for i in np.flatnonzero(fine_shard[inverse]).tolist():
        out[i] = to_cell(lat_list[i], lon_list[i], FINE_RES)
    return out


def overshoot_bound_m(radius_bound: int) -> float:
    """Worst distance outside the area of an included device whose cell radius is bounded so."""
    return 2.0 * radius_bound + TEST_SLACK_M


# Slack added to every inclusion distance: ECEF stored in whole cm and float rounding.
TEST_SLACK_M = 0.25


def cell_centers(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre lat/lon of each cell; one h3 call per distinct cell."""
    uniq, inverse = np.unique(np.asarray(cells, dtype=np.uint64), return_inverse=True)
    ll = np.array(
        [h3.cell_to_latlng(h3.int_to_str(int(c))) for c in uniq.tolist()], dtype=float
    ).reshape(-1, 2)
    return ll[inverse, 0], ll[inverse, 1]


def radius_bounds(cells: np.ndarray) -> np.ndarray:
    """``radius_bound_m`` of every cell, as uint8 metres (one lookup per distinct shard and res)."""
    cells = np.asarray(cells, dtype=np.uint64)
    # A shard's 4 lowest bits are all 1s, so XOR-ing the resolution in keeps (shard, res) unique.
    combo = parent(cells) ^ cell_res(cells).astype(np.uint64)
    uniq, inverse = np.unique(combo, return_inverse=True)
    vals = np.array(
        [radius_bound_m(int(c) | 15, (int(c) & 15) ^ 15) for c in uniq.tolist()], dtype=np.uint8
    )
    return vals[inverse]
