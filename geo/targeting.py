"""Exact target sets for an area, produced shard by shard for parallel fan-out.

``plan(area)`` lists the resolution-5 shards whose devices could be in the area. Interior
shards are wholly inside, so their live devices are taken without any per-device test. In a
boundary shard a device is included when its cell could hold a point of the area, i.e. when
the cell centre is within ``radius_m`` (the cell's circumradius bound) of the area:

* no device inside the area is missed (it is within radius_m of its cell centre);
* an included device is at most 2 * radius_m (+ a few cm) outside: < 161 m (see geo.cells).

Circles are tested without trigonometry: the stored cell centres are Earth-centred (ECEF)
coordinates, and along any azimuth the straight-line chord grows monotonically with the
geodesic distance. Chords below the smallest boundary chord are inside, above the largest are
outside; only the thin band between (centimetres at 100 km, ~3 m at 500 km) gets an exact
pyproj geodesic. Polygons are tested in the area's azimuthal equidistant frame with shapely.

Exclusion: ``AlertLedger`` is a Redis bitmap per case and message keyed by device id, so two
waves (or two workers) never alert the same device twice. It is partitioned by device id over
`PARTITIONS` hash tags, so one case's claims spread over a Redis Cluster's nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import h3
import numpy as np
import redis
import shapely

from geo import areas, cells
from geo.index import CHUNK_BITS, BitfieldStore, LocationIndex, epoch, latest


@dataclass(frozen=True)
class ShardPlan:
    """One unit of fan-out work: a shard, and whether it lies wholly inside the area."""

    cell: int
    interior: bool


# -- planning ---------------------------------------------------------------------------


def _candidate_shards(area: areas.Area) -> np.ndarray:
    """All shards whose centre is within reach of the area (a generous grid disk)."""
    reach = area.reach_m * (area.frame_scale_max if area.kind is areas.AreaKind.POLYGON else 1.0)
    span = reach + cells.MAX_SHARD_EXTENT_M + cells.MAX_CELL_RADIUS_M
    # Adjacent shard centres are >= 1.5 * min edge apart along any line; min edge >= 0.6 * mean.
    step = 1.5 * 0.6 * h3.average_hexagon_edge_length(cells.SHARD_RES, "m")
    k = math.ceil(span / step) + 2
    origin = h3.latlng_to_cell(area.center_lat, area.center_lon, cells.SHARD_RES)
    return np.array([h3.str_to_int(c) for c in h3.grid_disk(origin, k)], dtype=np.uint64)


@lru_cache(maxsize=64)
def plan(area: areas.Area) -> list[ShardPlan]:
    """Shards to process for ``area``; interior ones need no per-device test."""
    cand = _candidate_shards(area)
    ll = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cand.tolist()])
    extent = np.array([cells.shard_extent_m(int(c)) for c in cand.tolist()])
    if area.kind is areas.AreaKind.CIRCLE:
        d = areas.geodesic_distance_m(area.center_lat, area.center_lon, ll[:, 0], ll[:, 1])
        interior = d + extent <= area.radius_m
        keep = d - extent <= area.radius_m + cells.MAX_CELL_RADIUS_M
    else:
        k = area.frame_scale_max
        x, y = area.frame.transform(ll[:, 1], ll[:, 0])
        pts = shapely.points(x, y)
        inside = shapely.contains_xy(area.polygon_m, x, y)
        to_edge = shapely.distance(area.polygon_m.exterior, pts)
        interior = inside & (to_edge >= extent * k)
        keep = inside | (to_edge <= (extent + cells.MAX_CELL_RADIUS_M) * k)
    return [ShardPlan(int(c), bool(i)) for c, i in zip(cand[keep], interior[keep], strict=True)]


def covered_cells(earlier: Iterable[areas.Area]) -> frozenset[int]:
    """Every shard cell an earlier wave's plan kept, boundary ones included: any of them may
    hold devices already alerted."""
    return frozenset(s.cell for area in earlier for s in plan(area))


def topic_cells(covering: Sequence[ShardPlan], told: frozenset[int]) -> list[int]:
    """Shard cells a wave may reach by cell topic: wholly inside its area (interior shards) and
    clear of every cell an earlier wave covered (`covered_cells`). Every other device goes per
    token, exactly tested."""
    return [s.cell for s in covering if s.interior and s.cell not in told]


# -- per-device tests -------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _chord_bounds(lat: float, lon: float, dist_m: float) -> tuple[float, float]:
    """Squared min/max ECEF chord from (lat, lon) to its geodesic circle of radius dist_m."""
    n = 720
    blon, blat, _ = areas.GEOD.fwd(
        np.full(n, lon), np.full(n, lat), np.linspace(0, 360, n), np.full(n, dist_m)
    )
    c = cells.ecef(np.array([lat]), np.array([lon]))[0]
    chord = np.linalg.norm(cells.ecef(blat, blon) - c, axis=1)
    # The chord varies smoothly with azimuth (~cos 2a); 0.5 degree sampling errs by < 1 mm.
    lo, hi = chord.min() - 0.01, chord.max() + 0.01
    return lo * lo, hi * hi


def _centres(recs: np.ndarray) -> np.ndarray:
    return np.column_stack([recs["x"], recs["y"], recs["z"]]).astype(np.float64) / 100.0


def _near_circle(area: areas.Area, recs: np.ndarray) -> np.ndarray:
    centre = cells.ecef(np.array([area.center_lat]), np.array([area.center_lon]))[0]
    xyz = _centres(recs)
    d2 = np.einsum("ij,ij->i", xyz - centre, xyz - centre)
    keep = np.zeros(len(recs), dtype=bool)
    radius = recs["radius_m"]
    for rb in np.unique(radius).tolist():
        sel = radius == rb
        limit = area.radius_m + rb + cells.TEST_SLACK_M
        lo2, hi2 = _chord_bounds(area.center_lat, area.center_lon, limit)
        keep[sel & (d2 <= lo2)] = True
        band = np.flatnonzero(sel & (d2 > lo2) & (d2 <= hi2))
        if len(band):
            lat, lon = cells.latlon_from_ecef(xyz[band])
            dist = areas.geodesic_distance_m(area.center_lat, area.center_lon, lat, lon)
            keep[band[dist <= limit]] = True
    return keep


def _near_polygon(area: areas.Area, recs: np.ndarray) -> np.ndarray:
    lat, lon = cells.latlon_from_ecef(_centres(recs))
    x, y = area.frame.transform(lon, lat)
    keep = shapely.contains_xy(area.polygon_m, x, y)
    out = np.flatnonzero(~keep)
    if len(out):
        dist = shapely.distance(area.polygon_m.exterior, shapely.points(x[out], y[out]))
        limit = (recs["radius_m"][out] + cells.TEST_SLACK_M) * area.frame_scale_max
        keep[out[dist <= limit]] = True
    return keep


def near_area(area: areas.Area, recs: np.ndarray) -> np.ndarray:
    """Mask of records whose cell could hold a point of the area."""
    if len(recs) == 0:
        return np.zeros(0, dtype=bool)
    if area.kind is areas.AreaKind.CIRCLE:
        return _near_circle(area, recs)
    return _near_polygon(area, recs)


# -- exclusion ledger -------------------------------------------------------------------

# A case's bitmap is split by device id into PARTITIONS parts, each under its own hash tag
# `{<case>:<g>}` (device g = id % PARTITIONS), so its claims spread over the cluster's nodes
# while each claim script stays on one slot. Partition by id, not by place: a device keeps its
# bit wherever it moves. Within a part the bit index is id // PARTITIONS, so the parts together
# are as large as one bitmap. (Partitioning by id chunk would not spread: one chunk is 2**24 ids.)
PARTITION_BITS = 4
PARTITIONS = 1 << PARTITION_BITS
# Chunks of the old single-tag layout read by `AlertSnapshot` and `alerted_ids` (2**30 ids).
LEGACY_CHUNKS = 64
_OFF_MASK = (1 << CHUNK_BITS) - 1


def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(partition, chunk, bit offset) of each device id in the partitioned bitmap."""
    ids = np.asarray(ids, dtype=np.int64)
    local = ids >> PARTITION_BITS
    return ids & (PARTITIONS - 1), local >> CHUNK_BITS, local & _OFF_MASK


def join_ids(partition: int, chunks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Device ids of (chunk, bit offset) pairs of one partition (inverse of `split_ids`)."""
    local = (np.asarray(chunks, dtype=np.int64) << CHUNK_BITS) + np.asarray(offsets, np.int64)
    return (local << PARTITION_BITS) | partition


def _bits_at(bits: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Mask of the bits set at offsets (Redis numbers bits from each byte's top bit)."""
    byte = off >> 3
    inside = byte < len(bits)
    hit = np.zeros(len(off), dtype=bool)
    hit[inside] = (bits[byte[inside]] >> (7 - (off[inside] & 7)).astype(np.uint8)) & 1 == 1
    return hit


class AlertLedger:
    """Per case and message, the bitmap of devices already alerted (keyed by device id),
    partitioned by id over `PARTITIONS` hash tags.

    Keys of partition g: ``<prefix>:{<case>:<g>}:<message>:<chunk>`` (bitmap chunks) and
    ``...:<message>:chunks`` (the set of its chunk numbers, so reads need no SCAN).

    Migration: the layout before partitioning kept every chunk under ``{<case>}``
    (``legacy_key``). Those keys are read (snapshots, `geo.waves.claims.alerted_ids`) but
    never claimed against atomically, so a case active across the deploy can alert a device
    claimed under the old layout once more, in a shard small enough to skip the snapshot
    filter or claimed before that snapshot; notices to the alerted still reach it.
    """

    def __init__(
        self,
        client: redis.Redis,
        case_id: str | int,
        message_id: str | int,
        prefix: str = "alerted",
    ) -> None:
        self.case_id = str(case_id)
        self.prefix = prefix
        self.message_id = str(message_id)
        self.key = f"{prefix}:{{{case_id}}}:{message_id}"
        self.client = client

    def tag(self, partition: int) -> str:
        """The hash tag of a partition's keys (with braces)."""
        return f"{{{self.case_id}:{partition}}}"

    def chunk_key(self, partition: int, chunk: int) -> str:
        return f"{self.prefix}:{self.tag(partition)}:{self.message_id}:{chunk}"

    def chunks_key(self, partition: int) -> str:
        """The set of chunk numbers a partition holds."""
        return f"{self.prefix}:{self.tag(partition)}:{self.message_id}:chunks"

    def legacy_key(self, chunk: int) -> str:
        """A chunk of the unpartitioned layout (read only, see the class docstring)."""
        return f"{self.key}:{chunk}"

    def partition_record(self, record_key: str, partition: int) -> str:
        """A claim record key tagged ``{<case>}``, moved to the partition's hash tag."""
        tag = f"{{{self.case_id}}}"
        if tag not in record_key:
            raise ValueError(f"claim record {record_key!r} lacks the case hash tag {tag}")
        return record_key.replace(tag, self.tag(partition), 1)

    def claim(self, device_ids: np.ndarray) -> np.ndarray:
        """Mark devices alerted; returns those not marked before (atomic test-and-set per
        chunk; `geo.waves.claims.claim_once` is the recorded, redelivery-safe form)."""
        ids = np.unique(np.asarray(device_ids, dtype=np.int64))
        if len(ids) == 0:
            return ids
        if (ids < 0).any():
            raise ValueError("device ids must be non-negative")
        part, chunks, _ = split_ids(ids)
        old = np.zeros(len(ids), dtype=np.uint32)
        for g in np.unique(part).tolist():
            sel = np.flatnonzero(part == g)
            # The chunk set first: a listed chunk without bits reads as empty.
            self.client.sadd(self.chunks_key(g), *np.unique(chunks[sel]).tolist())
            fmt = self.chunk_key(g, 0)[: -len("0")].replace("{", "{{").replace("}", "}}")
            store = BitfieldStore(self.client, fmt + "{chunk}", "u1")
            old[sel] = store.set_many(ids[sel] >> PARTITION_BITS, np.uint32(1))
        return ids[old == 0]

    def snapshot(self) -> AlertSnapshot:
        """A read-only copy for vectorised filtering (fetched lazily, one GET per id chunk)."""
        return AlertSnapshot(self)


class AlertSnapshot:
    """Point-in-time view of an ``AlertLedger``; ``claim`` stays the authority when sending."""

    def __init__(self, ledger: AlertLedger) -> None:
        self.ledger = ledger
        self._chunks: dict[str, np.ndarray] = {}

    def _fetch(self, keys: list[str]) -> None:
        missing = [k for k in dict.fromkeys(keys) if k not in self._chunks]
        if not missing:
            return
        pipe = self.ledger.client.pipeline(transaction=False)
        for key in missing:
            pipe.get(key)
        for key, raw in zip(missing, pipe.execute(), strict=True):
            self._chunks[key] = np.frombuffer(raw or b"", dtype=np.uint8)

    def contains(self, device_ids: np.ndarray) -> np.ndarray:
        """Mask of ids already alerted at snapshot time (old layout included)."""
        ids = np.asarray(device_ids, dtype=np.int64)
        out = np.zeros(len(ids), dtype=bool)
        if len(ids) == 0:
            return out
        part, chunks, off = split_ids(ids)
        pc = part + (chunks << PARTITION_BITS)
        groups = np.unique(pc).tolist()
        legacy = np.unique(ids >> CHUNK_BITS).tolist()
        keys = [self.ledger.chunk_key(k & (PARTITIONS - 1), k >> PARTITION_BITS) for k in groups]
        self._fetch(keys + [self.ledger.legacy_key(c) for c in legacy])
        for k, key in zip(groups, keys, strict=True):
            sel = np.flatnonzero(pc == k)
            out[sel] = _bits_at(self._chunks[key], off[sel])
        for c in legacy:
            bits = self._chunks[self.ledger.legacy_key(c)]
            if len(bits):
                sel = np.flatnonzero((ids >> CHUNK_BITS) == c)
                out[sel] |= _bits_at(bits, ids[sel] & _OFF_MASK)
        return out


# -- the target set ---------------------------------------------------------------------


def _select(
    log: tuple[np.ndarray, int],
    shard_plan: ShardPlan,
    area: areas.Area,
    oldest: int,
    exclude: AlertSnapshot | None,
) -> np.ndarray:
    recs = latest(*log, oldest)
    if not shard_plan.interior:
        recs = recs[near_area(area, recs)]
    ids = recs["device_id"]
    if exclude is not None and len(ids):
        ids = ids[~exclude.contains(ids)]
    return ids


def _oldest(index: LocationIndex, now: datetime | None) -> int:
    return epoch(now or datetime.now(UTC)) - int(index.staleness.total_seconds())


def devices_in_shard(
    index: LocationIndex,
    shard_plan: ShardPlan,
    area: areas.Area,
    now: datetime | None = None,
    exclude: AlertSnapshot | None = None,
) -> np.ndarray:
    """Device ids of one shard to alert for ``area`` (live, not stale, not yet alerted)."""
    log = index.read_log(shard_plan.cell)
    return _select(log, shard_plan, area, _oldest(index, now), exclude)


def devices_in_shards(
    index: LocationIndex,
    shard_plans: Sequence[ShardPlan],
    area: areas.Area,
    now: datetime | None = None,
    exclude: AlertSnapshot | None = None,
    batch: int = 16,
) -> Iterator[tuple[ShardPlan, np.ndarray]]:
    """``devices_in_shard`` over a worker's shards, reading ``batch`` logs per round trip."""
    oldest = _oldest(index, now)
    for a in range(0, len(shard_plans), batch):
        part = shard_plans[a : a + batch]
        logs = index.read_logs([sp.cell for sp in part])
        for sp, log in zip(part, logs, strict=True):
            yield sp, _select(log, sp, area, oldest, exclude)


def target_count(index: LocationIndex, area: areas.Area, now: datetime | None = None) -> int:
    """Number of devices ``area`` reaches (sequentially over all shards; for tools and tests)."""
    return sum(len(ids) for _, ids in devices_in_shards(index, plan(area), area, now))
