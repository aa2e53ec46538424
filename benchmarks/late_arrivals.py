"""Bulk ingest with 0, 1 and 20 active cases: what the late-arrival check costs an upload.

    python benchmarks/late_arrivals.py [--devices 200000] [--batches 20] [--rounds 3]

Runs the bulk route's work (`geo.devices.ingest.apply_rows`: row checks, registry lookup, index
write, contact touch, the live-area check and, after the commit, the late-arrival tasks handed
to the broker) on an embedded Redis and SQLite in a temporary directory, on the same 10,000-row
uploads for each case count. The rows are spread over Guangdong as in bulk_ingest.py, so many
land inside the areas (the worst case: every such upload queues a task per case). The 20 cases
are circles of 100-500 km and 4 drawn polygons across the province. Case counts are
interleaved round by round so that drift hits them alike; the ratio is against 0 cases.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS_PER_UPLOAD = 10_000
CITIES = [
    (23.13, 113.26),
    (22.54, 114.06),
    (23.02, 113.75),
    (23.02, 113.12),
    (23.35, 116.68),
    (21.27, 110.36),
    (22.27, 113.57),
    (23.11, 114.42),
]


def live_areas(n: int, areas) -> list:
    """n case areas: circles of growing radius around the cities, every fifth a polygon."""
    out = []
    for i in range(n):
        lat, lon = CITIES[i % len(CITIES)]
        if i % 5 == 4:
            d = 0.6
            out.append(
                areas.Area.from_vertices(
                    [(lat - d, lon - d), (lat - d, lon + d), (lat + d, lon + d), (lat + d, lon - d)]
                )
            )
        else:
            out.append(areas.Area.circle(lat, lon, 100.0 + 100.0 * (i % 5)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ru-late-"))
    os.environ.update(REUNITE_DATA_DIR=str(tmp), REUNITE_MODE="development")
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    from ops.platform.embedded import EmbeddedRedis

    embedded = EmbeddedRedis(tmp)
    embedded.start()
    os.environ["REDIS_URL"] = embedded.url
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'reunite.db'}"

    from _registry import seed_apns_devices

    from alerts import bootstrap, migrate
    from alerts.partners import service as partners
    from geo import areas, late
    from geo.devices import ingest
    from geo.devices import service as devices
    from ops.platform.db import session_scope
    from ops.platform.redis_client import get_broker_redis, get_redis

    migrate.upgrade()
    bootstrap.wire()  # task routes, as in the API process: late-arrival tasks go to "geo"
    with session_scope() as s:
        partner_id = partners.create_partner(s, "bench", partners.PartnerKind.APP, actor="bench").id
    seed_apns_devices(partner_id, args.devices)

    rng = np.random.default_rng(7)
    uploads = []
    for _ in range(args.batches):
        picks = rng.integers(0, args.devices, ROWS_PER_UPLOAD)
        lats = 21.5 + rng.random(ROWS_PER_UPLOAD) * 3
        lons = 110.5 + rng.random(ROWS_PER_UPLOAD) * 6
        uploads.append(
            [
                {"id": f"d{i}", "lat": float(a), "lon": float(b)}
                for i, a, b in zip(picks.tolist(), lats.tolist(), lons.tolist(), strict=True)
            ]
        )

    client = get_redis()
    broker = get_broker_redis()
    index = devices.location_index()
    shapes = live_areas(20, areas)

    def activate(n: int) -> None:
        late.withdraw_all(client)
        for i, area in enumerate(shapes[:n]):
            late.publish(client, f"case-{i}", i + 1, 0, 0, area)

    def run(n: int) -> tuple[float, float, int]:
        """rows/s of apply_rows, the check's own seconds, tasks queued."""
        activate(n)
        queued_before = sum(
            broker.llen(k) for k in broker.keys("geo*") if broker.type(k) == b"list"
        )
        check = 0.0
        t0 = time.perf_counter()
        for rows in uploads:
            with session_scope() as s:
                ingest.apply_rows(s, index, partner_id, rows)
        elapsed = time.perf_counter() - t0
        # The check alone, on the same rows (ids and coordinates as apply_rows has them).
        live = late.live_areas(client)
        for rows in uploads:
            ids = np.arange(len(rows), dtype=np.int64)
            lats = np.fromiter((r["lat"] for r in rows), dtype=np.float64, count=len(rows))
            lons = np.fromiter((r["lon"] for r in rows), dtype=np.float64, count=len(rows))
            c0 = time.perf_counter()
            late.find(live, ids, lats, lons)
            check += time.perf_counter() - c0
        queued = sum(broker.llen(k) for k in broker.keys("geo*") if broker.type(k) == b"list")
        for k in broker.keys("geo*"):
            broker.delete(k)
        return len(uploads) * ROWS_PER_UPLOAD / elapsed, check, queued - queued_before

    counts = tuple(int(c) for c in os.environ.get("LATE_COUNTS", "0,1,20").split(","))
    run(0)  # warm-up: first writes to the index, imports, SQLite cache
    rates: dict[int, list[float]] = {n: [] for n in counts}
    checks: dict[int, list[float]] = {n: [] for n in counts}
    tasks: dict[int, int] = dict.fromkeys(counts, 0)
    for _ in range(args.rounds):
        for n in counts:
            rate, check, queued = run(n)
            rates[n].append(rate)
            checks[n].append(check)
            tasks[n] += queued
    embedded.stop()

    rows = len(uploads) * ROWS_PER_UPLOAD
    base = float(np.median(rates[0]))
    print(
        f"registry {args.devices:,} devices; {args.batches} uploads of {ROWS_PER_UPLOAD:,} rows "
        f"x {args.rounds} rounds per case count"
    )
    for n in counts:
        rate = float(np.median(rates[n]))
        per_row_us = float(np.median(checks[n])) / rows * 1e6
        check = f"{per_row_us:.3f} us/row" if n else "-"
        print(
            f"{n:>2} active cases: apply_rows {rate:,.0f} rows/s (ratio {rate / base:.3f}); "
            f"check alone {check}; {tasks[n] / args.rounds:.0f} tasks queued per round"
        )


if __name__ == "__main__":
    main()
