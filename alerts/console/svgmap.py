"""An offline SVG map of alert areas: rings, last-seen point, graticule and scale bar.

Pure (no I/O). Web Mercator, so an optional tile layer (a deployment's own tile server) lines
up with the drawing; without one the map still reads: rings on a labelled graticule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

EARTH_RADIUS_KM = 6371.0088
TILE = 256
NICE = (1, 2, 5)
PALETTE = ("#b91c1c", "#c2410c", "#a16207", "#4d7c0f", "#0e7490", "#6d28d9")


@dataclass(frozen=True)
class Ring:
    """One wave's area: a circle by radius, or a polygon of (lat, lon) vertices."""

    label: str
    radius_km: float | None = None
    vertices: tuple[tuple[float, float], ...] = ()


def world_px(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Web Mercator pixel coordinates of a point at an integer zoom."""
    lat = max(min(lat, 85.05112878), -85.05112878)
    scale = TILE * 2**zoom
    x = (lon + 180.0) / 360.0 * scale
    s = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * scale
    return x, y


def destination(lat: float, lon: float, bearing_deg: float, km: float) -> tuple[float, float]:
    """The point km away along a great circle (spherical Earth: well under 0.5 % off)."""
    d = km / EARTH_RADIUS_KM
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def circle(lat: float, lon: float, km: float, points: int = 96) -> list[tuple[float, float]]:
    """A geodesic circle as a closed list of (lat, lon)."""
    return [destination(lat, lon, 360.0 * i / points, km) for i in range(points)]


def _nice(value: float) -> float:
    """The largest 1-2-5 number not above value."""
    exp = math.floor(math.log10(value))
    best = 10.0**exp
    for n in NICE:
        if n * 10.0**exp <= value:
            best = n * 10.0**exp
    return best


def _fmt_deg(v: float, step: float, pos: str, neg: str) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{abs(v):.{decimals}f}°{pos if v >= 0 else neg}"


def render(
    lat: float,
    lon: float,
    rings: Sequence[Ring],
    *,
    size: int = 560,
    tile_url: str | None = None,
    title: str = "Alert area map",
    point_label: str = "Last seen",
) -> str:
    """The SVG document for a map centred on (lat, lon) showing the rings."""
    outlines: list[tuple[Ring, list[tuple[float, float]]]] = []
    for ring in rings:
        if ring.vertices:
            outlines.append((ring, list(ring.vertices)))
        elif ring.radius_km:
            outlines.append((ring, circle(lat, lon, ring.radius_km)))
    # Fit the largest outline (or 5 km) into the map at the largest integer zoom.
    pts = [p for _, o in outlines for p in o] or circle(lat, lon, 5.0, 16)
    zoom = 0
    for z in range(18, -1, -1):
        xs, ys = zip(*(world_px(a, b, z) for a, b in pts), strict=True)
        if max(max(xs) - min(xs), max(ys) - min(ys)) <= size * 0.92:
            zoom = z
            break
    cx, cy = world_px(lat, lon, zoom)
    x0, y0 = cx - size / 2, cy - size / 2

    def xy(a: float, b: float) -> tuple[float, float]:
        x, y = world_px(a, b, zoom)
        return round(x - x0, 1), round(y - y0, 1)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'class="map" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{size}" height="{size}" fill="#f4f6f8"/>',
    ]
    if tile_url:
        n = 2**zoom
        for tx in range(int(x0 // TILE), int((x0 + size) // TILE) + 1):
            for ty in range(max(0, int(y0 // TILE)), min(n, int((y0 + size) // TILE) + 1)):
                href = tile_url.format(z=zoom, x=tx % n, y=ty)
                out.append(
                    f'<image href="{escape(href)}" x="{tx * TILE - x0:.1f}" '
                    f'y="{ty * TILE - y0:.1f}" width="{TILE}" height="{TILE}"/>'
                )
    # Graticule: about four to eight lines each way, labelled at the edges.
    west, north = _lonlat(x0, y0, zoom)
    east, south = _lonlat(x0 + size, y0 + size, zoom)
    step = _nice(max(east - west, 1e-6) / 4)
    out.append('<g class="graticule" stroke="#c5ccd4" stroke-width="1" font-size="11">')
    v = math.ceil(west / step) * step
    while v <= east:
        x, _ = xy(lat, v)
        out.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{size}"/>')
        label = _fmt_deg(v, step, "E", "W")
        out.append(f'<text x="{x + 3}" y="12" fill="#4b5563" stroke="none">{label}</text>')
        v += step
    v = math.ceil(south / step) * step
    while v <= north:
        _, y = xy(v, lon)
        out.append(f'<line x1="0" y1="{y}" x2="{size}" y2="{y}"/>')
        label = _fmt_deg(v, step, "N", "S")
        out.append(f'<text x="3" y="{y - 3}" fill="#4b5563" stroke="none">{label}</text>')
        v += step
    out.append("</g>")
    # Rings, largest first so the smaller ones stay visible on top.
    order = sorted(enumerate(outlines), key=lambda item: -(item[1][0].radius_km or float("inf")))
    for i, (ring, outline) in order:
        colour = PALETTE[i % len(PALETTE)]
        d = " ".join(f"{x},{y}" for x, y in (xy(a, b) for a, b in outline))
        out.append(
            f'<polygon points="{d}" fill="{colour}" fill-opacity="0.07" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(ring.label)}</title></polygon>'
        )
        top = min(outline, key=lambda p: xy(*p)[1])
        tx, ty = xy(*top)
        out.append(
            f'<text x="{tx + 4}" y="{max(ty + 14, 28)}" font-size="12" font-weight="600" '
            f'fill="{colour}">{escape(ring.label)}</text>'
        )
    px, py = xy(lat, lon)
    out.append(
        f'<circle cx="{px}" cy="{py}" r="6" fill="#111827" stroke="#ffffff" stroke-width="2">'
        f"<title>{escape(point_label)}</title></circle>"
    )
    out.append(
        f'<text x="{px + 9}" y="{py + 4}" font-size="12" fill="#111827">{escape(point_label)}'
        "</text>"
    )
    # Scale bar: a 1-2-5 length near a quarter of the width, true at the centre latitude.
    km_per_px = 2 * math.pi * EARTH_RADIUS_KM * math.cos(math.radians(lat)) / (TILE * 2**zoom)
    bar_km = _nice(size / 4 * km_per_px)
    bar_px = round(bar_km / km_per_px, 1)
    label = f"{bar_km:g} km"
    out.append(
        f'<g class="scale"><rect x="12" y="{size - 34}" width="{bar_px + 16}" height="24" '
        'fill="#ffffff" fill-opacity="0.85"/>'
        f'<path d="M20 {size - 18} v6 h{bar_px} v-6" fill="none" stroke="#111827" '
        'stroke-width="2"/>'
        f'<text x="{20 + bar_px / 2}" y="{size - 20}" font-size="11" text-anchor="middle" '
        f'fill="#111827">{label}</text></g>'
    )
    out.append("</svg>")
    return "\n".join(out)


def _lonlat(x: float, y: float, zoom: int) -> tuple[float, float]:
    scale = TILE * 2**zoom
    lon = x / scale * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / scale))))
    return lon, lat
