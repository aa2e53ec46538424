"""The offline basemap the console ships (built by geo/basemap/build.py): present, valid
GeoJSON, covering China with every layer the map draws, and small enough to serve."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from shapely.geometry import box, shape

from alerts.console import maps
from geo.basemap import build

ASSET = Path(__file__).resolve().parents[3] / "alerts/console/static/basemap/china.geojson"
MAX_BYTES = 2 * 1024 * 1024
MAX_GZIP_BYTES = 400 * 1024
# Mainland China with Hainan, Hong Kong, Macao and Taiwan: lon 73.5-134.8, lat 18.2-53.6.
CHINA = box(73.5, 18.2, 134.8, 53.6)


def load() -> dict:
    return json.loads(ASSET.read_text(encoding="utf-8"))


def test_the_basemap_is_valid_geojson_below_the_size_cap():
    raw = ASSET.read_bytes()
    assert len(raw) < MAX_BYTES and len(gzip.compress(raw)) < MAX_GZIP_BYTES
    doc = load()
    assert doc["type"] == "FeatureCollection" and "Natural Earth" in doc["attribution"]
    assert "GeoNames" in doc["attribution"]
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        geom = shape(feature["geometry"])
        assert geom.is_valid and not geom.is_empty, feature["properties"]
        assert box(*doc["bbox"]).buffer(1e-6).contains(geom)


def test_it_covers_china_with_land_coast_borders_provinces_and_cities():
    doc = load()
    by_layer: dict[str, list] = {}
    for feature in doc["features"]:
        by_layer.setdefault(feature["properties"]["layer"], []).append(shape(feature["geometry"]))
    assert set(by_layer) == {"land", "lake", "coast", "country", "province", "city"}
    from shapely.ops import unary_union

    land = unary_union(by_layer["land"])
    assert land.intersection(CHINA).area / CHINA.area > 0.8  # the window is mostly land
    for layer in ("coast", "country", "province"):
        bounds = unary_union(by_layer[layer]).bounds
        assert bounds[0] < 80 and bounds[2] > 125 and bounds[1] < 25 and bounds[3] > 45, layer
    cities = {f["properties"]["en"]: f for f in doc["features"] if "en" in f["properties"]}
    for en, zh in (("Beijing", "北京"), ("Guangzhou", "广州"), ("Ürümqi", "乌鲁木齐")):
        assert cities[en]["properties"]["zh"] == zh
    assert cities["Shanghai"]["properties"]["rank"] == 1


def test_the_console_keeps_maps_inside_what_the_basemap_covers():
    (south, west), (north, east) = maps.BASEMAP_BOUNDS
    assert (west, south, east, north) == build.OUTER == tuple(load()["bbox"])
    assert maps.BASEMAP_URL.endswith("/" + ASSET.name)
