"""Incremental compaction of the location index: logs stay small between hourly compactions
while phones report every 15 minutes, and no upload is lost to a compaction racing it."""

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from geo import areas, cells, index, targeting
from geo.areas import Area

pytestmark = pytest.mark.cluster_smoke

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GZ = (23.13, 113.26)


@pytest.fixture
def idx(geo_redis):
    return index.LocationIndex(geo_redis, prefix="t")


def _near(n, rng, km=3.0):
    """n device cells scattered within ``km`` of Guangzhou (a handful of shards)."""
    lon, lat, _ = areas.GEOD.fwd(
        np.full(n, GZ[1]), np.full(n, GZ[0]), rng.uniform(0, 360, n), rng.uniform(0, km * 1e3, n)
    )
    return cells.snap_many(lat, lon)


def _log_records(idx):
    return sum(len(idx.read_log(int(s))[0]) for s in idx.shards())


def test_four_reports_per_hour_keep_logs_near_one_record_per_device(idx):
    rng = np.random.default_rng(3)
    n = 2_000
    ids = np.arange(n)
    where = _near(n, rng)
    idx.ingest(ids, where, NOW)
    idx.compact_all()
    for quarter in range(1, 5):  # one report per device every 15 minutes, in uploads of 250
        moved = rng.random(n) < 0.2
        where[moved] = _near(int(moved.sum()), rng)
        order = rng.permutation(n)
        for a in range(0, n, 250):
            sel = order[a : a + 250]
            idx.ingest(ids[sel], where[sel], NOW + timedelta(minutes=15 * quarter, seconds=a))
            idx.compact_due()  # what the frequent sweep does; never the hourly compact_all
    # Without the sweep these logs would hold 5 records per device plus tombstones.
    assert _log_records(idx) <= n * (1 + index.DEFAULT_COMPACT_RATIO) + len(idx.shards()) * 300
    now = NOW + timedelta(hours=1)
    live = np.concatenate([idx.live(int(s), now) for s in idx.shards()])
    assert sorted(live["device_id"].tolist()) == ids.tolist()
    got = dict(zip(live["device_id"].tolist(), live["cell"].tolist(), strict=True))
    assert got == dict(zip(ids.tolist(), where.tolist(), strict=True))
    assert targeting.target_count(idx, Area.circle(*GZ, 10), now) == n


def test_a_shard_is_compacted_once_its_tail_passes_the_threshold(idx, geo_redis):
    cell = np.array([cells.snap(*GZ)], dtype=np.uint64)
    shard = int(cells.parent(cell)[0])
    n = 1_000
    idx.ingest(np.arange(n), np.repeat(cell, n), NOW)  # never compacted: the tail is all of it
    assert geo_redis.smembers(idx.due_key) == {str(shard).encode()}
    assert idx.compact_due() == 1
    assert idx.read_log(shard)[1] == n
    assert not geo_redis.exists(idx.tail_key(shard))
    idx.ingest(np.arange(n // 2), np.repeat(cell, n // 2), NOW)  # tail = ratio * head: not yet
    assert idx.compact_due() == 0
    assert len(idx.read_log(shard)[0]) == n + n // 2
    idx.ingest(np.array([n]), cell, NOW)
    assert idx.compact_due() == 1
    assert idx.read_log(shard)[1] == n + 1


def test_uploads_racing_two_compactors_are_never_lost(idx):
    """Two sweep workers compact the same shard while a partner keeps uploading new devices."""
    cell = np.array([cells.snap(*GZ)], dtype=np.uint64)
    shard = int(cells.parent(cell)[0])
    base = 20_000  # a head big enough that compactions overlap each other and the uploads
    idx.ingest(np.arange(base), np.repeat(cell, base), NOW)
    stop = threading.Event()
    errors = []

    def compactor():
        try:
            while not stop.is_set():
                idx.compact(shard)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=compactor) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for k in range(150):  # every upload brings 20 devices never seen before
            ids = base + 20 * k + np.arange(20)
            idx.ingest(ids, np.repeat(cell, 20), NOW + timedelta(seconds=k))
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert not errors
    idx.compact(shard)
    live = idx.live(shard, NOW + timedelta(minutes=1))
    assert np.array_equal(np.sort(live["device_id"]), np.arange(base + 3_000))


def test_latest_matches_the_reference_on_unsorted_and_sorted_heads():
    rng = np.random.default_rng(9)
    recs = np.zeros(3_000, dtype=index.RECORD)
    recs["device_id"] = rng.integers(0, 800, len(recs))
    recs["updated_at"] = np.arange(len(recs))
    recs["flags"] = rng.random(len(recs)) < 0.1
    _, first = np.unique(recs["device_id"][::-1], return_index=True)
    want = recs[len(recs) - 1 - first]
    want = want[want["flags"] == 0]
    for head in (want[rng.permutation(len(want))], np.sort(want, order="device_id")):
        head = head[: len(head) // 2]
        for blob_recs, compacted in ((recs, 0), (np.concatenate([head, recs]), len(head))):
            got = index.latest(blob_recs, compacted, 0)
            assert np.array_equal(np.sort(got, order="device_id"), want)
