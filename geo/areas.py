"""Geodesic alert areas: a circle around the last-seen point, or a manual polygon.

Representation choices (the reader needs them to trust the targeting):

* Circles are geodesic on WGS84: every point at most ``radius_km`` from the centre along the
  ellipsoid, computed with ``pyproj.Geod``. Nothing is ever buffered in degrees.
* ``Area.polygon`` is a shapely geometry in lon/lat that *contains* the area (it circumscribes
  the circle, checked edge by edge), so CAP consumers that test points against it never miss.
  - Crossing the antimeridian, it is a MultiPolygon split at +/-180 (RFC 7946 style), and the
    CAP form is one ``polygon`` string per part (``cap_polygons()``).
  - A circle containing a pole becomes the polar cap ``lat >= boundary(lon)``: the boundary
    ring sorted by longitude from -180 to 180, closed along the pole edge (lat = +/-90).
* Manual polygons have straight edges in lon/lat (that is how CAP consumers draw them). Edges
  take the short way across the antimeridian. Polygons around a pole are refused: use a circle.
* For metric work (targeting, distances) an area offers a local azimuthal equidistant frame
  centred on it: distances from the centre are exact, and other distances are stretched by at
  most ``frame_scale_max`` (below 1.2% within 1,500 km).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

import numpy as np
import pyproj
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

GEOD = pyproj.Geod(ellps="WGS84")
EARTH_RADIUS_M = 6_371_008.8
# A polygon edge may sit this far outside the circle; more vertices keep CAP areas tight.
CAP_EDGE_SLACK_M = 50.0
_WORLD = box(-180.0, -90.0, 180.0, 90.0)


class AreaError(ValueError):
    """An area definition is invalid; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AreaKind(StrEnum):
    CIRCLE = "circle"
    POLYGON = "polygon"


def _check_lat(field: str, lat: float) -> None:
    if not (isinstance(lat, int | float) and math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise AreaError(field, f"latitude must be within [-90, 90], got {lat!r}")


def _check_lon(field: str, lon: float) -> None:
    if not (isinstance(lon, int | float) and math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise AreaError(field, f"longitude must be within [-180, 180], got {lon!r}")


def wrap_lon(lon: np.ndarray | float) -> np.ndarray | float:
    """Bring longitudes into [-180, 180)."""
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


def geodesic_distance_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """WGS84 geodesic distance in metres (vectorised, exact to the nanometre)."""
    lat1, lon1, lat2, lon2 = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (lat1, lon1, lat2, lon2))
    )
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def _split_antimeridian(poly: Polygon) -> BaseGeometry:
    """Cut a polygon drawn in unwrapped longitudes into parts inside [-180, 180]."""
    parts: list[Polygon] = []
    for shift in (-360.0, 0.0, 360.0):
        piece = poly.intersection(box(-180.0 - shift, -90.0, 180.0 - shift, 90.0))
        if piece.is_empty:
            continue
        piece = affinity.translate(piece, xoff=shift)
        geoms = getattr(piece, "geoms", [piece])
        parts.extend(g for g in geoms if isinstance(g, Polygon) and g.area > 0)
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _fmt(value: float) -> str:
    text = f"{value:.6f}"
    return "0.000000" if text == "-0.000000" else text


@dataclass(frozen=True)
class Area:
    """An alert area. Build it with ``Area.circle`` or ``Area.from_vertices``."""

    kind: AreaKind
    center_lat: float
    center_lon: float
    radius_km: float | None = None
    # Manual polygon vertices as (lat, lon), not closed; longitudes unwrapped (short edges).
    vertices: tuple[tuple[float, float], ...] = ()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def circle(cls, lat: float, lon: float, radius_km: float) -> Area:
        """A geodesic circle of ``radius_km`` around (lat, lon)."""
        _check_lat("center_lat", lat)
        _check_lon("center_lon", lon)
        if not (isinstance(radius_km, int | float) and math.isfinite(radius_km)):
            raise AreaError("radius_km", f"must be a number, got {radius_km!r}")
        if radius_km <= 0:
            raise AreaError("radius_km", f"must be greater than 0, got {radius_km}")
        if radius_km > 5_000:
            raise AreaError("radius_km", f"must be at most 5000, got {radius_km}")
        return cls(AreaKind.CIRCLE, float(lat), float(lon), float(radius_km))

    @classmethod
    def from_vertices(cls, vertices: list[tuple[float, float]] | tuple) -> Area:
        """A manual polygon from (lat, lon) vertices; a closing vertex is optional."""
        pts = [tuple(map(float, v)) for v in vertices]
        if len(pts) > 1 and pts[0] == pts[-1]:
            pts = pts[:-1]
        if len(pts) < 3:
            raise AreaError(
                "vertices", f"a polygon needs at least 3 distinct vertices, got {len(pts)}"
            )
        for i, (lat, lon) in enumerate(pts):
            _check_lat(f"vertices[{i}].lat", lat)
            _check_lon(f"vertices[{i}].lon", lon)
        # Unwrap so that each edge takes the short way round (across the antimeridian if shorter).
        lons = [pts[0][1]]
        for _, lon in pts[1:]:
            step = float(wrap_lon(lon - lons[-1]))
            lons.append(lons[-1] + step)
        if abs(lons[-1] + float(wrap_lon(pts[0][1] - lons[-1])) - lons[0]) > 1e-9:
            raise AreaError("vertices", "polygons around a pole are not supported; use a circle")
        ring = Polygon([(lon, lat) for (lat, _), lon in zip(pts, lons, strict=True)])
        if not ring.is_valid:
            raise AreaError("vertices", f"polygon is invalid ({shapely.is_valid_reason(ring)})")
        if ring.area <= 0:
            raise AreaError("vertices", "polygon has zero area")
        c = ring.centroid
        unwrapped = tuple((lat, lon) for (lat, _), lon in zip(pts, lons, strict=True))
        return cls(AreaKind.POLYGON, float(c.y), float(wrap_lon(c.x)), None, unwrapped)

    # -- geometry ----------------------------------------------------------------------

    @property
    def radius_m(self) -> float:
        if self.radius_km is None:
            raise AreaError("radius_km", "a polygon area has no radius")
        return self.radius_km * 1000.0

    @cached_property
    def contains_pole(self) -> int:
        """+1 or -1 when a circle contains the North or South pole, else 0."""
        if self.kind is not AreaKind.CIRCLE:
            return 0
        for pole in (1, -1):
            if (
                geodesic_distance_m(self.center_lat, self.center_lon, 90.0 * pole, 0.0)
                <= self.radius_m
            ):
                return pole
        return 0

    def _circle_ring(self) -> np.ndarray:
        """(n, 2) lat/lon ring (not closed) whose lon/lat polygon contains the circle."""
        r = self.radius_m
        n = max(36, math.ceil(math.pi / math.acos(r / (r + CAP_EDGE_SLACK_M))))
        az = np.linspace(0.0, 360.0, n, endpoint=False)
        r_out = r / math.cos(math.pi / n)
        # A planar circumscription is not exact in lon/lat: check every edge and push out more.
        for _ in range(20):
            lon, lat, _ = GEOD.fwd(
                np.full(n, self.center_lon), np.full(n, self.center_lat), az, np.full(n, r_out)
            )
            if self.contains_pole:
                return np.column_stack([lat, lon])
            ulon = self.center_lon + np.asarray(wrap_lon(lon - self.center_lon))
            mid_lon = (ulon + np.roll(ulon, -1)) / 2
            mid_lat = (lat + np.roll(lat, -1)) / 2
            d = geodesic_distance_m(self.center_lat, self.center_lon, mid_lat, wrap_lon(mid_lon))
            deficit = r - d.min()
            if deficit <= 0:
                return np.column_stack([lat, ulon])
            r_out += 1.5 * deficit + 0.01
        raise AssertionError("circle ring did not converge")  # pragma: no cover

    def _pole_polygon(self, ring: np.ndarray) -> Polygon:
        pole = 90.0 * self.contains_pole
        lat, lon = ring[:, 0], np.asarray(wrap_lon(ring[:, 1]))
        order = np.argsort(lon)
        lat, lon = lat[order], lon[order]
        # Interpolate the crossing of the antimeridian so the cap spans exactly [-180, 180].
        gap = lon[0] + 360.0 - lon[-1]
        t = (180.0 - lon[-1]) / gap if gap > 0 else 0.0
        lat_edge = lat[-1] + t * (lat[0] - lat[-1])
        pts = [(-180.0, lat_edge), *zip(lon, lat, strict=True), (180.0, lat_edge)]
        return Polygon([*pts, (180.0, pole), (-180.0, pole)])

    @cached_property
    def polygon(self) -> BaseGeometry:
        """Lon/lat shapely geometry containing the area (MultiPolygon across the antimeridian)."""
        if self.kind is AreaKind.CIRCLE:
            ring = self._circle_ring()
            if self.contains_pole:
                return self._pole_polygon(ring)
            poly = Polygon(np.column_stack([ring[:, 1], ring[:, 0]]))
        else:
            poly = Polygon([(lon, lat) for lat, lon in self.vertices])
        if poly.within(_WORLD):
            return poly
        return _split_antimeridian(poly)

    @cached_property
    def frame(self) -> pyproj.Transformer:
        """Lon/lat -> metres in an azimuthal equidistant frame centred on the area."""
        proj = pyproj.CRS.from_proj4(
            f"+proj=aeqd +lat_0={self.center_lat} +lon_0={self.center_lon} +ellps=WGS84 +units=m"
        )
        return pyproj.Transformer.from_crs("EPSG:4326", proj, always_xy=True)

    @cached_property
    def reach_m(self) -> float:
        """The largest distance from the centre to a point of the area."""
        if self.kind is AreaKind.CIRCLE:
            return self.radius_m
        lat, lon = self._dense_vertices()
        return float(geodesic_distance_m(self.center_lat, self.center_lon, lat, lon).max())

    @cached_property
    def frame_scale_max(self) -> float:
        """Upper bound of the frame's scale error within 200 km of the area."""
        theta = (self.reach_m + 200_000.0) / EARTH_RADIUS_M
        return theta / math.sin(theta) * 1.001

    def _dense_vertices(self, step_deg: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
        """Closed polygon ring, densified so straight lon/lat edges survive projection."""
        ring = shapely.segmentize(Polygon([(lon, lat) for lat, lon in self.vertices]), step_deg)
        xy = np.asarray(ring.exterior.coords)
        return xy[:, 1], np.asarray(wrap_lon(xy[:, 0]))

    @cached_property
    def polygon_m(self) -> Polygon:
        """A manual polygon in the area's metric frame."""
        if self.kind is not AreaKind.POLYGON:
            raise AreaError("kind", "only polygon areas have a metric polygon")
        lat, lon = self._dense_vertices()
        x, y = self.frame.transform(lon, lat)
        poly = Polygon(np.column_stack([x, y]))
        shapely.prepare(poly)
        return poly

    # -- tests against points -----------------------------------------------------------

    def distance_outside_m(self, lat: float, lon: float) -> float:
        """Metres from (lat, lon) to the area, 0 inside (polygons: within frame_scale_max)."""
        if self.kind is AreaKind.CIRCLE:
            d = float(geodesic_distance_m(self.center_lat, self.center_lon, lat, lon))
            return max(0.0, d - self.radius_m)
        x, y = self.frame.transform(lon, lat)
        return float(self.polygon_m.distance(shapely.Point(x, y)))

    def contains(self, lat: float, lon: float) -> bool:
        """Whether (lat, lon) lies inside the area."""
        return self.distance_outside_m(lat, lon) == 0.0

    # -- CAP -----------------------------------------------------------------------------

    def cap_circle(self) -> str:
        """CAP ``circle`` text: "lat,lon radius_km"."""
        if self.kind is not AreaKind.CIRCLE:
            raise AreaError("kind", "a polygon area has no CAP circle; use cap_polygon()")
        return f"{_fmt(self.center_lat)},{_fmt(self.center_lon)} {_fmt(self.radius_m / 1000.0)}"

    def cap_polygons(self) -> list[str]:
        """CAP ``polygon`` texts, one per part of ``polygon`` (two across the antimeridian)."""
        geoms = getattr(self.polygon, "geoms", [self.polygon])
        out = []
        for g in geoms:
            coords = list(shapely.geometry.polygon.orient(g, 1.0).exterior.coords)
            if coords[0] != coords[-1]:  # shapely closes rings; keep the invariant explicit
                coords.append(coords[0])
            out.append(" ".join(f"{_fmt(lat)},{_fmt(lon)}" for lon, lat in coords))
        return out

    def cap_polygon(self) -> str:
        """CAP ``polygon`` text (closed "lat,lon" pairs); refuses an antimeridian-split area."""
        parts = self.cap_polygons()
        if len(parts) != 1:
            raise AreaError("polygon", "area crosses the antimeridian; use cap_polygons()")
        return parts[0]
