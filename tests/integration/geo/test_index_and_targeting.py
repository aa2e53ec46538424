"""The Redis location index and shard-by-shard targeting, against a real Redis."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from geo import areas, cells, index, targeting
from geo.areas import Area

# Every test here also runs on the Redis Cluster by default: the whole module takes ~2 s there.
pytestmark = pytest.mark.cluster_smoke

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GZ = (23.13, 113.26)


@pytest.fixture
def idx(geo_redis):
    return index.LocationIndex(geo_redis, prefix="t")


def _at(lat, lon):
    return np.array([cells.snap(lat, lon)], dtype=np.uint64)


def _targets(idx, area, now=NOW, exclude=None):
    parts = [targeting.devices_in_shard(idx, sp, area, now, exclude) for sp in targeting.plan(area)]
    return set(np.concatenate(parts).tolist()) if parts else set()


def _point(lat, lon, az, dist_m):
    plon, plat, _ = areas.GEOD.fwd(lon, lat, az, dist_m)
    return plat, plon


def test_device_in_area_is_targeted_and_device_200m_outside_is_not(idx):
    area = Area.circle(*GZ, 100)
    inside = _point(*GZ, 45, 99_990)
    outside = _point(*GZ, 45, 100_200)
    idx.ingest(np.array([1, 2]), np.concatenate([_at(*inside), _at(*outside)]), NOW)
    assert _targets(idx, area) == {1}


def test_newer_location_supersedes_and_moves_shard(idx):
    area = Area.circle(*GZ, 20)
    far = _point(*GZ, 0, 300_000)
    idx.ingest(np.array([7]), _at(*GZ), NOW - timedelta(minutes=5))
    assert _targets(idx, area) == {7}
    idx.ingest(np.array([7]), _at(*far), NOW)
    assert _targets(idx, area) == set()
    assert _targets(idx, Area.circle(*far, 5)) == {7}


def test_last_row_of_a_batch_wins(idx):
    far = _point(*GZ, 90, 300_000)
    idx.ingest(np.array([5, 5]), np.concatenate([_at(*GZ), _at(*far)]), NOW)
    assert _targets(idx, Area.circle(*GZ, 20)) == set()
    assert _targets(idx, Area.circle(*far, 5)) == {5}


def test_removed_device_is_not_targeted(idx):
    idx.ingest(np.array([1, 2, 3]), np.repeat(_at(*GZ), 3), NOW)
    assert idx.remove([2, 99], at=NOW) == 1
    assert _targets(idx, Area.circle(*GZ, 10)) == {1, 3}


def test_stale_location_is_not_targeted(idx):
    idx.ingest(np.array([1]), _at(*GZ), NOW - timedelta(hours=25))
    idx.ingest(np.array([2]), _at(*GZ), NOW - timedelta(hours=23))
    assert _targets(idx, Area.circle(*GZ, 10)) == {2}


def test_purge_forgets_devices_silent_past_retention(idx, geo_redis):
    idx.ingest(np.array([1]), _at(*GZ), NOW - timedelta(days=31))
    idx.ingest(np.array([2]), _at(*GZ), NOW)
    idx.purge(before=NOW - timedelta(days=30))
    shard = int(cells.parent(_at(*GZ))[0])
    assert idx.live(shard, now=NOW - timedelta(days=31))["device_id"].tolist() == [2]
    # The purged device's map slot is cleared: a later upload starts fresh, without tombstones.
    assert idx.remove([1]) == 0


def test_compaction_keeps_one_record_per_device_and_concurrent_appends(idx):
    ids = np.arange(50)
    for minute in range(3):
        idx.ingest(ids, np.repeat(_at(*GZ), 50), NOW + timedelta(minutes=minute))
    shard = int(cells.parent(_at(*GZ))[0])
    assert len(idx.read_log(shard)[0]) == 150
    assert idx.compact(shard) == 50
    recs, compacted = idx.read_log(shard)
    assert (len(recs), compacted) == (50, 50)
    idx.ingest(np.array([3]), _at(*_point(*GZ, 0, 300_000)), NOW + timedelta(minutes=9))
    assert len(idx.live(shard, NOW)) == 49


def test_ledger_claims_each_device_once_across_waves(geo_redis):
    ledger = targeting.AlertLedger(geo_redis, case_id=42, message_id="m1")
    first = ledger.claim(np.array([1, 5, 2**24 + 3]))
    second = ledger.claim(np.array([5, 6, 2**24 + 3]))
    assert first.tolist() == [1, 5, 2**24 + 3]
    assert second.tolist() == [6]
    snap = ledger.snapshot()
    assert snap.contains(np.array([1, 2, 6, 2**24 + 3, 10**9])).tolist() == [
        True,
        False,
        True,
        True,
        False,
    ]


def test_second_wave_skips_devices_alerted_by_the_first(idx, geo_redis):
    near = _point(*GZ, 0, 50_000)
    farther = _point(*GZ, 0, 150_000)
    idx.ingest(np.array([1, 2]), np.concatenate([_at(*near), _at(*farther)]), NOW)
    ledger = targeting.AlertLedger(geo_redis, case_id="c1", message_id="m1")
    wave0 = _targets(idx, Area.circle(*GZ, 100), exclude=ledger.snapshot())
    ledger.claim(np.array(sorted(wave0)))
    wave1 = _targets(idx, Area.circle(*GZ, 200), exclude=ledger.snapshot())
    assert (wave0, wave1) == ({1}, {2})


def test_whole_target_set_matches_brute_force(idx):
    rng = np.random.default_rng(3)
    n = 20_000
    lat, lon = rng.uniform(22.0, 24.2, n), rng.uniform(112.2, 114.4, n)
    idx.ingest(np.arange(n), cells.snap_many(lat, lon), NOW)
    area = Area.circle(*GZ, 60)
    got = np.array(sorted(_targets(idx, area)))
    d = areas.geodesic_distance_m(*GZ, lat, lon) - area.radius_m
    assert set(np.flatnonzero(d <= 0)) <= set(got.tolist())
    assert d[got].max() <= cells.WEA_OVERSHOOT_M


def test_polygon_area_targets_devices_inside(idx):
    poly = Area.from_vertices([(22.9, 113.0), (22.9, 113.6), (23.4, 113.6), (23.4, 113.0)])
    idx.ingest(np.array([1, 2]), np.concatenate([_at(23.0, 113.1), _at(24.0, 113.1)]), NOW)
    assert _targets(idx, poly) == {1}


def test_antimeridian_devices_on_both_sides_are_targeted(idx):
    idx.ingest(
        np.array([1, 2, 3]),
        np.concatenate([_at(0.0, 179.9), _at(0.0, -179.9), _at(0.0, 178.0)]),
        NOW,
    )
    assert _targets(idx, Area.circle(0.0, 179.5, 100)) == {1, 2}
