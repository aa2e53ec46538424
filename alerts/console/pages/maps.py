"""Maps and address lookup: the vendored Leaflet and the shipped basemap as static files, the
place search of the new-case form, and the map data of the case page and the dashboard."""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import JSONResponse, Response

from alerts.cases import service as cases
from alerts.console import maps
from alerts.console.web import Anyone, ConsoleRoute, CsrfChecked, Police
from geo.gazetteer import service as gazetteer

router = APIRouter(route_class=ConsoleRoute)
STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".geojson": "application/geo+json",
}
# Every file these routes may serve, fixed at start-up: nothing outside it is reachable.
SERVED = {
    str(p.relative_to(STATIC)): p
    for folder in ("vendor/leaflet", "map", "basemap")
    for p in (STATIC / folder).rglob("*")
    if p.suffix in TYPES
}
CACHE = {"Cache-Control": "public, max-age=3600"}
ERROR_STATUS = {"timeout": 504, "rate_limited": 429}


@lru_cache(maxsize=4)
def _gzipped(rel: str) -> bytes:
    return gzip.compress(SERVED[rel].read_bytes(), compresslevel=9, mtime=0)


@router.get("/static/{folder}/{name:path}")
def map_static(folder: str, name: str, request: Request) -> Response:
    """Leaflet, the map script and style, and the basemap (gzip when the browser takes it)."""
    rel = f"{folder}/{name}"
    if rel not in SERVED:
        raise HTTPException(404, "not found")
    path = SERVED[rel]
    media = TYPES[path.suffix]
    if path.suffix in (".geojson", ".js") and "gzip" in request.headers.get("accept-encoding", ""):
        headers = {**CACHE, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(_gzipped(rel), media_type=media, headers=headers)
    return Response(path.read_bytes(), media_type=media, headers=CACHE)


def _field_error(field: str, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"field": field, "message": message, "type": kind}]}, status_code=422
    )


@router.post("/geocode", dependencies=[CsrfChecked])
async def geocode(request: Request, ctx: Police) -> Response:
    """Places matching {"q": ...} from the configured geocoder, best first, capped.

    POST, not GET: the query may be personal data, and a query string lands in access logs
    (uvicorn's, the proxy's); a body does not. The query is never logged here either.
    """
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _field_error("body", ctx.t("geo.body"), "json_invalid")
    q = body.get("q")
    if not isinstance(q, str) or not q.strip():
        return _field_error("q", ctx.t("geo.q_missing"), "missing")
    if len(q) > gazetteer.QUERY_MAX_CHARS:
        return _field_error("q", ctx.t("geo.q_long", n=gazetteer.QUERY_MAX_CHARS), "too_long")
    limit = body.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        return _field_error("limit", ctx.t("geo.limit"), "int_type")
    try:
        found = gazetteer.lookup(q, ctx.lang, ctx.settings, limit)
    except gazetteer.LookupFailed as exc:
        return JSONResponse(
            {"detail": ctx.t("geo.failed", cause=ctx.t(f"geo.cause_{exc.cause}"))},
            status_code=ERROR_STATUS.get(exc.cause, 502),
        )
    return JSONResponse(
        {
            "provider": ctx.settings.geocoder,
            "results": [
                {
                    "label": c.label,
                    "name": c.name,
                    "province": c.province,
                    "country": c.country,
                    "lat": c.lat,
                    "lon": c.lon,
                }
                for c in found
            ],
        }
    )


@router.get("/cases/{case_id}/map")
def case_map(case_id: str, ctx: Police) -> Response:
    """The case page map's data: every wave's ring, sightings and places (for refreshing)."""
    assert ctx.user is not None
    case = cases.get(ctx.db, case_id, ctx.user)
    return JSONResponse(maps.case_map(ctx.db, case, ctx.t, ctx.settings))


@router.get("/dashboard/map")
def dashboard_map(ctx: Anyone) -> Response:
    """Active cases as points for the dashboard map."""
    assert ctx.user is not None
    points = maps.dashboard_points(ctx.db, ctx.user, ctx.is_police, ctx.t)
    return JSONResponse({"rings": [], "points": points})
