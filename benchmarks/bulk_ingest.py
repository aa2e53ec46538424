"""Partner bulk location uploads through the HTTP API, against the bare index as a baseline.

    python benchmarks/bulk_ingest.py [--devices 200000] [--requests 30] [--clients 2]

Starts `reunite api` on an embedded Redis and SQLite in a temporary directory, registers the
devices, then POSTs 10,000-row JSON uploads from concurrent clients and reports rows/s. In the
same run it times LocationIndex.ingest alone on the same rows (what the index can take), so the
ratio shows what the HTTP, validation and registry lookup layers cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROWS_PER_REQUEST = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ru-bulk-"))
    os.environ.update(REUNITE_DATA_DIR=str(tmp), REUNITE_MODE="development")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    from alerts import migrate
    from alerts.partners import service as partners
    from geo import cells
    from geo.devices import service as devices
    from ops.platform.db import session_scope
    from ops.platform.embedded import EmbeddedRedis

    embedded = EmbeddedRedis(tmp)
    embedded.start()
    os.environ["REDIS_URL"] = embedded.url
    migrate.upgrade()

    with session_scope() as s:
        partner = partners.create_partner(s, "bench", partners.PartnerKind.APP, actor="bench")
        key = partners.issue_key(s, partner, [partners.Scope.DEVICES_WRITE], actor="bench")
        partner_id = partner.id
    from _registry import seed_apns_devices

    seed_apns_devices(partner_id, args.devices)
    rng = np.random.default_rng(7)

    def upload(n: int) -> list[dict]:
        picks = rng.integers(0, args.devices, n)
        lats = 21.5 + rng.random(n) * 3
        lons = 110.5 + rng.random(n) * 6
        return [
            {"id": f"d{i}", "lat": float(a), "lon": float(b)}
            for i, a, b in zip(picks.tolist(), lats.tolist(), lons.tolist(), strict=True)
        ]

    bodies = [upload(ROWS_PER_REQUEST) for _ in range(args.requests)]

    # Baseline: the index alone, on the same rows (ids resolved, cells snapped beforehand).
    index = devices.location_index()
    prepared = []
    for body in bodies:
        ids = np.array([int(r["id"][1:]) + 1 for r in body], dtype=np.int64)
        lat = np.array([r["lat"] for r in body])
        lon = np.array([r["lon"] for r in body])
        prepared.append((ids, cells.snap_many(lat, lon)))
    t0 = time.perf_counter()
    for ids, cell in prepared:
        index.ingest(ids, cell, np.full(len(ids), int(time.time()), dtype=np.uint32))
    index_rate = args.requests * ROWS_PER_REQUEST / (time.perf_counter() - t0)

    port = 18000 + os.getpid() % 1000
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp / 'reunite.db'}")
    api = subprocess.Popen(
        [sys.executable, "-m", "alerts.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/livez").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {key}"}
        latencies: list[float] = []

        def post(body: list[dict]) -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                t = time.perf_counter()
                res = client.post("/api/v1/partner/devices/bulk", json=body, headers=headers)
                latencies.append(time.perf_counter() - t)
                assert res.status_code == 200 and not res.json()["rejected"], res.text[:200]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(post, bodies))
        elapsed = time.perf_counter() - t0
    finally:
        api.terminate()
        api.wait()
        embedded.stop()
    rows = args.requests * ROWS_PER_REQUEST
    lat = np.array(latencies) * 1000
    print(
        f"registry: {args.devices:,} devices; {args.requests} uploads of {ROWS_PER_REQUEST:,} rows"
    )
    print(f"HTTP bulk path (1 API process, {args.clients} clients): {rows / elapsed:,.0f} rows/s")
    print(f"  per upload: p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms")
    print(f"index alone (same rows, same run): {index_rate:,.0f} rows/s")
    print(f"ratio HTTP path / index: {rows / elapsed / index_rate:.2f}")


if __name__ == "__main__":
    main()
