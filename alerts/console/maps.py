"""What the console's maps draw: rings, points and the picker, as data for static/map/map.js.

Pages pass this data in a `data-map` attribute (the CSP forbids inline script) or serve it as
JSON for maps that refresh. Rings are geodesic polygons computed here, so every map (and the
no-JS SVG fallback) draws the same area the targeting uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from alerts.console import svgmap, views
from alerts.console.web import TEMPLATES
from alerts.tips import service as tips
from alerts.tips.triage import TipState
from alerts.users.models import User
from channels.base import Area
from geo.rulesets.schemas import PreviewRead
from geo.waves import service as waves
from geo.waves.models import Sighting
from ops.platform.config import Settings

RING_POINTS = 96
DIGITS = 5
BASEMAP_URL = "/console/static/basemap/china.geojson"
# What the shipped basemap covers (geo/basemap/build.py OUTER), as [[south, west], [north, east]]:
# offline maps never zoom or pan out past it, so its edge stays out of sight.
BASEMAP_BOUNDS = [[-5.0, 45.0], [65.0, 165.0]]
LIVE_WAVES = ("started", "targeting", "queued")

Translate = Callable[..., str]


def _ring(lat: float, lon: float, radius_km: float | None, vertices, label: str, **kw) -> dict:
    if vertices:
        outline = [(float(a), float(b)) for a, b in vertices]
    else:
        outline = svgmap.circle(lat, lon, float(radius_km or 0), RING_POINTS)
    return {
        "label": label,
        "radius_km": radius_km,
        "center": [round(lat, DIGITS), round(lon, DIGITS)],
        "polygon": [[round(a, DIGITS), round(b, DIGITS)] for a, b in outline],
        **kw,
    }


def _point(lat: float, lon: float, label: str, kind: str, **kw) -> dict:
    return {
        "lat": round(lat, DIGITS),
        "lon": round(lon, DIGITS),
        "label": label,
        "kind": kind,
        **kw,
    }


def config(settings: Settings, t: Translate, lang: str) -> dict[str, Any]:
    """The base layer every map uses: the deployment's tiles, or the shipped basemap."""
    return {
        "tiles": settings.map_tile_url or None,
        "tilesAttribution": settings.map_tile_attribution,
        "basemap": None if settings.map_tile_url else BASEMAP_URL,
        "bounds": None if settings.map_tile_url else BASEMAP_BOUNDS,
        "attribution": t("map.attribution"),
        "lang": "zh" if lang.startswith("zh") else "en",
    }


def preview(
    preview: PreviewRead, lat: float, lon: float, t: Translate, first: int = 3
) -> dict[str, Any]:
    """The rings of a rules preview (review page: the first waves; rules page: more)."""
    rings = []
    for w in preview.waves[:first]:
        label = t("map.wave", n=w.index + 1, km=f"{w.radius_km:g}" if w.radius_km else "—")
        vertices = None if w.radius_km is not None else Area.parse_polygon(w.cap_polygon)
        rings.append(_ring(lat, lon, w.radius_km, vertices, label, current=w.index == 0))
    return {"rings": rings, "points": [_point(lat, lon, t("map.last_seen"), "last_seen")]}


def case_map(session: Session, case: Case, t: Translate, settings: Settings) -> dict[str, Any]:
    """Every wave's ring (the live one marked current), the sightings and the places."""
    rows = waves.waves_of(session, case.id)
    latest = max((w.epoch for w in rows), default=0)
    live = [w for w in rows if w.epoch == latest and w.status in LIVE_WAVES]
    current_id = live[-1].id if live else None
    # Live counts on the map: devices each wave targeted so far (refreshed with the map).
    targeted = waves.wave_stats([w.id for w in rows]) if rows else {}
    rings = []
    for w in rows:
        if w.status == "cancelled" and w.started_at is None:
            continue  # never went out (superseded by a sighting, or the case closed first)
        km = f"{w.radius_km:g}" if w.radius_km else "—"
        label = t("map.wave", n=w.index + 1, km=km)
        if w.id == current_id:
            label = f"{label} · {t('map.current')}"
        if w.started_at is not None:
            label = f"{label} · {t('map.targeted', n=f'{targeted.get(w.id, 0):,}')}"
        rings.append(
            _ring(
                w.center_lat,
                w.center_lon,
                w.radius_km,
                (w.area or {}).get("vertices"),
                label,
                current=w.id == current_id,
                status=w.status,
                epoch=w.epoch,
                superseded=w.epoch != latest,
                targeted=targeted.get(w.id, 0),
            )
        )
    points = []
    first = min(rows, key=lambda w: (w.epoch, w.index)) if rows else None
    if first is not None and (first.center_lat, first.center_lon) != (
        case.last_seen_lat,
        case.last_seen_lon,
    ):
        points.append(_point(first.center_lat, first.center_lon, t("map.original"), "original"))
    sightings = session.scalars(
        select(Sighting).where(Sighting.case_id == case.id).order_by(Sighting.at)
    ).all()
    for s in sightings:
        points.append(
            _point(s.lat, s.lon, t("map.sighting", at=views.local(s.at, settings)), "sighting")
        )
    # Tips with a place, for the officers triaging them (dismissed ones and erased places not).
    for tip in tips.tips_of(session, case.id):
        if tip.lat is None or tip.lon is None or tip.state == TipState.DISMISSED:
            continue
        label = t("map.tip", id=tip.id, state=t(f"tips.state_{tip.state}"))
        points.append(_point(tip.lat, tip.lon, label, "tip", tip=tip.id))
    points.append(_point(case.last_seen_lat, case.last_seen_lon, t("map.last_seen"), "last_seen"))
    return {"rings": rings, "points": points, "state": case.state}


def dashboard_points(
    session: Session, user: User, police: bool, t: Translate
) -> list[dict[str, Any]]:
    """Active cases as points (police: their agencies', with a link; operators: all, bare)."""
    query = select(Case).where(Case.state == CaseState.ACTIVE.value)
    if police:
        query = query.where(Case.agency_id.in_(cases.visible_agencies(session, user)))
    out = []
    for case in session.scalars(query.order_by(Case.last_seen_at.desc())).unique():
        extra = {"href": f"/console/cases/{case.id}"} if police else {}
        label = t("map.case", id=case.id[:8])
        out.append(_point(case.last_seen_lat, case.last_seen_lon, label, "case", **extra))
    return out


def picker(lat: Any, lon: Any) -> dict[str, Any]:
    """The new-case picker: the inputs it fills and where its marker starts (if anywhere)."""

    def number(value: Any) -> float | None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    start = (number(lat), number(lon))
    return {
        "pick": {"lat": "f-lat", "lon": "f-lon", "address": "f-address"},
        "points": [],
        "rings": [],
        "start": list(start) if None not in start else None,
    }


# Templates build their map data with these (see templates/_map.html).
TEMPLATES.env.globals["maps"] = {
    "config": config,
    "preview": preview,
    "picker": picker,
}
