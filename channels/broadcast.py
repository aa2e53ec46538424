"""Where a carrier's area broadcast goes: only ground no earlier broadcast of the case covered.

A wave's area contains the waves before it, so broadcasting each wave's whole circle re-alerts
every handset already told. A wave's broadcast is its area minus the union of the areas the
case broadcast before (a ring for concentric waves, a crescent after a sighting moves the
centre), and a closing notice goes to the union of everything broadcast. CAP polygons have no
holes, so a ring is cut into hole-free pieces and sent as several polygons of one area, as
CAP's <area> allows. Geometry is planar in (lon, lat) on the stored polygons, whose vertices
are the geodesic circles' own; areas crossing the antimeridian are not handled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shapely import ops
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from channels.base import Area

MIN_PIECE_DEG2 = 1e-8  # slivers left by rounding to CAP's 6 decimals (~1 m wide) are dropped


def _polygon(area: Area) -> Polygon:
    return Polygon([(lon, lat) for lat, lon in area.polygon]).buffer(0)


def _union(areas: Iterable[Area]) -> BaseGeometry:
    return ops.unary_union([_polygon(a) for a in areas])


def _parts(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]


def hole_free(geom: BaseGeometry) -> list[Polygon]:
    """The geometry as polygons without holes: each holed polygon is cut by a north-south
    line through a hole until none is left (a ring becomes two crescents)."""
    out: list[Polygon] = []
    todo = _parts(geom)
    while todo:
        piece = todo.pop()
        if piece.is_empty or piece.area < MIN_PIECE_DEG2:
            continue
        if not piece.interiors:
            out.append(piece)
            continue
        x = Polygon(piece.interiors[0]).representative_point().x
        _, miny, _, maxy = piece.bounds
        cut = LineString([(x, miny - 1.0), (x, maxy + 1.0)])
        todo.extend(_parts(ops.split(piece, cut)))
    return out


def cap_polygons(geom: BaseGeometry) -> list[str]:
    """CAP 1.2 polygon texts ('lat,lon' pairs, closed), one per hole-free piece."""
    texts = []
    for piece in sorted(hole_free(geom), key=lambda p: p.bounds):
        pairs = tuple((lat, lon) for lon, lat in piece.exterior.coords)
        texts.append(Area(polygon=pairs).cap_polygon())
    return texts


def new_ground(area: Area, earlier: Sequence[Area]) -> list[str]:
    """CAP polygons of the part of `area` that none of the `earlier` broadcasts covered."""
    geom = _polygon(area)
    if earlier:
        geom = geom.difference(_union(earlier))
    return cap_polygons(geom)


def told(areas: Sequence[Area]) -> list[str]:
    """CAP polygons covering every area broadcast before (where a closing notice goes)."""
    return cap_polygons(_union(areas)) if areas else []
