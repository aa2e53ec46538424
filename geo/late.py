"""Alerts for people who arrive later: the live areas of active cases, and the check of each
location upload against them.

A wave that starts publishes its area (the case's current one: a case's waves only grow, and a
new epoch's first wave replaces the old epoch's) to one small Redis hash; closing the case
withdraws it. Ingest keeps a copy for `REFRESH_S` seconds and checks each upload batch against
it with numpy (a latitude/longitude box first, then the exact geodesic circle or polygon on
the few rows inside the box). The devices inside go, after the upload's commit, to the
`LATE_ARRIVALS` task: `alerts.dispatch.flows.alert_late_arrivals` re-reads the case, claims them
in the case's alerted bitmap (never a device already told) and hands them to the channels with
the live wave's message.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import redis
import shapely
from sqlalchemy import event
from sqlalchemy.orm import Session

from geo import areas
from ops.platform.celery_app import celery_app
from ops.platform.outbox import service as outbox

log = logging.getLogger(__name__)

# Task name: part of the wire format, never changes. The task lives in alerts.dispatch.tasks.
LATE_ARRIVALS = "reunite.geo.late_arrivals"
# One hash, field per case: a single key, so it is Redis Cluster safe as it is.
AREAS_KEY = "geo:late:areas"
# How long ingest trusts its copy of the live areas; a closure is enforced by the task itself,
# so a stale copy costs at most a refused task, never an alert.
REFRESH_S = 2.0
# Degrees of latitude per km, from the shortest meridian degree (110.57 km at the equator),
# rounded down: the box is never narrower than the circle.
_KM_PER_DEG_MIN = 110.5
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class LiveArea:
    """One active case's current area, with the box that pre-filters upload rows."""

    case_id: str
    wave_id: int
    area: areas.Area
    lat_min: float
    lat_max: float
    # None: no longitude filter (near a pole, or across the antimeridian).
    lon_min: float | None
    lon_max: float | None

    @classmethod
    def build(cls, case_id: str, wave_id: int, area: areas.Area) -> LiveArea:
        """The area and its bounding box, computed once per refresh."""
        if area.kind is areas.AreaKind.CIRCLE:
            assert area.radius_km is not None
            dlat = area.radius_km / _KM_PER_DEG_MIN * 1.001 + 1e-6
            lat_min, lat_max = area.center_lat - dlat, area.center_lat + dlat
            lon_min = lon_max = None
            if lat_max < 89.0 and lat_min > -89.0:
                # The classic bound on a sphere, widened for the ellipsoid.
                ratio = math.sin(area.radius_km / EARTH_RADIUS_KM) / math.cos(
                    math.radians(area.center_lat)
                )
                if ratio < 1.0:
                    dlon = math.degrees(math.asin(ratio)) * 1.01 + 1e-6
                    lon_min, lon_max = area.center_lon - dlon, area.center_lon + dlon
        else:
            west, south, east, north = area.polygon.bounds
            lat_min, lat_max = south - 0.01, north + 0.01
            lon_min, lon_max = west - 0.01, east + 0.01
        if lon_min is not None and lon_max is not None and (lon_min < -180 or lon_max > 180):
            lon_min = lon_max = None  # across the antimeridian: the latitude band only
        return cls(case_id, wave_id, area, lat_min, lat_max, lon_min, lon_max)

    def inside(self, lats: np.ndarray, lons: np.ndarray, unit: Unit | None = None) -> np.ndarray:
        """Indices of the rows inside the area: the box, then (circles) the spherical angle
        with a band for the ellipsoid, where only rows in the band get the exact geodesic, or
        (polygons) the prepared lon/lat polygon, whose edges are the area's own."""
        box = (lats >= self.lat_min) & (lats <= self.lat_max)
        if self.lon_min is not None:
            box &= (lons >= self.lon_min) & (lons <= self.lon_max)
        rows = np.flatnonzero(box)
        if not len(rows):
            return rows
        area = self.area
        if area.kind is not areas.AreaKind.CIRCLE:
            shape = area.polygon
            shapely.prepare(shape)
            return rows[shapely.contains_xy(shape, lons[rows], lats[rows])]
        unit = unit or Unit.of(lats, lons)
        c = self.center
        cos_angle = unit.x[rows] * c[0] + unit.y[rows] * c[1] + unit.z[rows] * c[2]
        sure = cos_angle >= self.cos_inner
        band = np.flatnonzero(~sure & (cos_angle > self.cos_outer))
        if len(band):
            exact = areas.geodesic_distance_m(
                area.center_lat, area.center_lon, lats[rows[band]], lons[rows[band]]
            )
            sure[band] = np.asarray(exact) <= area.radius_m
        return rows[sure]

    @property
    def center(self) -> tuple[float, float, float]:
        return _unit(self.area.center_lat, self.area.center_lon)

    @property
    def cos_inner(self) -> float:
        """Above this cosine of the central angle a point is inside on any ellipsoid reading."""
        return math.cos(self._angle(1.0 - BAND))

    @property
    def cos_outer(self) -> float:
        """At or below this one it is outside."""
        return math.cos(min(math.pi, self._angle(1.0 + BAND)))

    def _angle(self, factor: float) -> float:
        assert self.area.radius_km is not None
        return self.area.radius_km * factor / EARTH_RADIUS_KM


# The WGS84 geodesic and the great circle on the mean-radius sphere differ by less than 0.6%
# of the distance; rows within this share of the radius get the exact geodesic.
BAND = 0.01


def _unit(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


@dataclass(frozen=True)
class Unit:
    """Upload rows as unit vectors, computed once per batch and shared by every circle."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @classmethod
    def of(cls, lats: np.ndarray, lons: np.ndarray) -> Unit:
        phi, lam = np.radians(lats), np.radians(lons)
        cos_phi = np.cos(phi)
        return cls(cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi))


def encode(wave_id: int, epoch: int, index: int, area: areas.Area) -> str:
    """The hash value for a case's live wave."""
    doc: dict = {"wave": wave_id, "epoch": epoch, "index": index}
    if area.kind is areas.AreaKind.CIRCLE:
        doc.update(lat=area.center_lat, lon=area.center_lon, radius_km=area.radius_km)
    else:
        doc["vertices"] = [list(v) for v in area.vertices]
    return json.dumps(doc)


def decode(case_id: str, raw: bytes | str) -> LiveArea:
    """A hash value back as a LiveArea."""
    doc = json.loads(raw)
    if doc.get("vertices"):
        area = areas.Area.from_vertices([tuple(v) for v in doc["vertices"]])
    else:
        area = areas.Area.circle(doc["lat"], doc["lon"], doc["radius_km"])
    return LiveArea.build(case_id, int(doc["wave"]), area)


def publish(
    client: redis.Redis, case_id: str, wave_id: int, epoch: int, index: int, area: areas.Area
) -> None:
    """Make this wave the case's live area, unless a later wave of the case already is."""
    current = client.hget(AREAS_KEY, case_id)
    if current is not None:
        doc = json.loads(current)
        if (doc.get("epoch", 0), doc.get("index", 0)) > (epoch, index):
            return
    client.hset(AREAS_KEY, case_id, encode(wave_id, epoch, index, area))
    invalidate()


def withdraw(client: redis.Redis, case_id: str) -> None:
    """The case closed: its area takes no more late arrivals."""
    client.hdel(AREAS_KEY, case_id)
    invalidate()


def withdraw_all(client: redis.Redis) -> None:
    """The operator turned the setting off: no case takes late arrivals until its next wave."""
    client.delete(AREAS_KEY)
    invalidate()


@dataclass
class _Cache:
    fetched_at: float = -math.inf
    areas: list[LiveArea] = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache = _Cache()


def invalidate() -> None:
    """Forget this process's copy (the next upload re-reads Redis)."""
    _cache.fetched_at = -math.inf


def live_areas(client: redis.Redis) -> list[LiveArea]:
    """The active cases' areas, re-read from Redis at most every REFRESH_S seconds."""
    now = time.monotonic()
    if now - _cache.fetched_at < REFRESH_S:
        return _cache.areas
    with _cache.lock:
        if now - _cache.fetched_at < REFRESH_S:
            return _cache.areas
        raw = client.hgetall(AREAS_KEY)
        if raw != _cache.raw:
            built = []
            for key, value in raw.items():
                case_id = key.decode() if isinstance(key, bytes) else key
                try:
                    built.append(decode(case_id, value))
                except (ValueError, KeyError, areas.AreaError):
                    continue  # a malformed entry must not stop ingest; the wave still ran
            _cache.areas, _cache.raw = built, raw
        _cache.fetched_at = now
    return _cache.areas


@dataclass(frozen=True)
class Arrivals:
    """Devices of one upload inside one case's live area."""

    case_id: str
    wave_id: int
    device_ids: np.ndarray


_WIDTHS = {"h": "<u2", "i": "<u4", "q": "<i8"}


def pack(device_ids: np.ndarray) -> str:
    """Sorted unique device ids for a task argument: the first id and the gaps, in the
    narrowest little-endian width that holds them, base64 (an upload in a city sends
    thousands; this is ~4x smaller than int64 and ~10x smaller than a JSON list)."""
    ids = np.unique(np.asarray(device_ids, dtype=np.int64))
    gaps = np.diff(ids, prepend=np.int64(0))
    top = int(gaps.max()) if len(gaps) else 0
    code = "h" if top < 1 << 16 else "i" if top < 1 << 32 else "q"
    return code + base64.b64encode(gaps.astype(_WIDTHS[code]).tobytes()).decode()


def unpack(packed: str) -> np.ndarray:
    """The ids `pack` encoded, sorted."""
    gaps = np.frombuffer(base64.b64decode(packed[1:]), dtype=_WIDTHS[packed[0]])
    return np.cumsum(gaps.astype(np.int64))


def find(
    live: list[LiveArea], device_ids: np.ndarray, lats: np.ndarray, lons: np.ndarray
) -> list[Arrivals]:
    """Which uploaded devices lie inside which live area (pure: no I/O)."""
    out = []
    unit = Unit.of(lats, lons) if any(a.area.radius_km is not None for a in live) else None
    for area in live:
        rows = area.inside(lats, lons, unit)
        if len(rows):
            out.append(Arrivals(area.case_id, area.wave_id, device_ids[rows]))
    return out


def encode_arrivals(found: list[Arrivals]) -> tuple[str, list[list]]:
    """An upload's arrivals as task arguments: every device id once (packed), and per case a
    packed bit mask over those ids. Areas overlap and a city's upload may fall in several, so
    this keeps the message (and the broker's cost) near one id per device."""
    ids = np.unique(np.concatenate([a.device_ids for a in found]))
    cases = []
    for arrivals in found:
        mask = np.zeros(len(ids), dtype=bool)
        mask[np.searchsorted(ids, arrivals.device_ids)] = True
        cases.append(
            [
                arrivals.case_id,
                arrivals.wave_id,
                base64.b64encode(np.packbits(mask).tobytes()).decode(),
            ]
        )
    return pack(ids), cases


def decode_arrivals(packed_ids: str, cases: list[list]) -> list[Arrivals]:
    """The arrivals `encode_arrivals` packed."""
    ids = unpack(packed_ids)
    out = []
    for case_id, wave_id, packed_mask in cases:
        bits = np.unpackbits(np.frombuffer(base64.b64decode(packed_mask), dtype=np.uint8))
        out.append(Arrivals(case_id, int(wave_id), ids[bits[: len(ids)].astype(bool)]))
    return out


def send(found: list[Arrivals]) -> None:
    """Queue one late-arrivals task for the upload, every case's devices in it (one message
    per upload, not per case, keeps the broker's cost flat as cases add up). Its token makes
    a redelivered task claim the same devices."""
    if not found:
        return
    ids, cases = encode_arrivals(found)
    try:
        celery_app.send_task(LATE_ARRIVALS, args=[uuid.uuid4().hex, ids, cases])
    except outbox.BROKER_ERRORS as exc:
        # The upload is stored and answered; these devices stay unclaimed, so their next upload
        # inside the area queues them again. No outbox row: uploads are too frequent for one.
        log.warning(
            "late arrivals not queued (broker away: %s); %d cases", type(exc).__name__, len(cases)
        )


def check_upload(
    session: Session,
    client: redis.Redis,
    device_ids: np.ndarray,
    lats: np.ndarray,
    lons: np.ndarray,
) -> list[Arrivals]:
    """Check an upload against the live areas; the devices inside are queued once the
    session commits (a new device's registration must be readable by the task)."""
    live = live_areas(client)
    if not live or not len(device_ids):
        return []
    found = find(live, np.asarray(device_ids), np.asarray(lats), np.asarray(lons))
    if found:
        event.listen(session, "after_commit", lambda _s: send(found), once=True)
    return found
