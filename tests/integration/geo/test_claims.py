"""The case's alerted bitmap partitioned over hash tags: claims spread over slots, once each."""

from __future__ import annotations

import numpy as np
import pytest
from redis.cluster import key_slot

from geo import targeting
from geo.index import CHUNK_BITS
from geo.waves import claims

pytestmark = pytest.mark.cluster_smoke

CASE = "c7"


def _ledger(client) -> targeting.AlertLedger:
    return targeting.AlertLedger(client, CASE, "alert")


def _record(name: str) -> str:
    return f"claimed:{{{CASE}}}:{name}"


def _keys(client) -> list[str]:
    return [k.decode() for k in client.scan_iter(match="*", count=1000)]


def test_a_case_claims_over_many_slots_each_script_on_one(geo_redis):
    ledger = _ledger(geo_redis)
    ids = np.concatenate([np.arange(200), np.arange(200) + (3 << (CHUNK_BITS + 4))])
    got = claims.claim_once(geo_redis, ledger, _record("1:a"), ids)
    assert got.tolist() == ids.tolist()
    slots: dict[int, set[str]] = {}
    for key in _keys(geo_redis):
        slots.setdefault(key_slot(key.encode()), set()).add(key.split("{")[1].split("}")[0])
    assert len(slots) > 1
    # Every key one partition's script touches (record, chunk set, chunks) shares a slot.
    for g in range(targeting.PARTITIONS):
        part = [ledger.partition_record(_record("1:a"), g), ledger.chunks_key(g)]
        part += [ledger.chunk_key(g, c) for c in (0, 3)]
        assert len({key_slot(k.encode()) for k in part}) == 1


def test_a_device_is_claimed_once_whichever_shard_claims_it_later(geo_redis):
    ledger = _ledger(geo_redis)
    first = claims.claim_once(geo_redis, ledger, _record("1:a"), np.arange(0, 100))
    # Wave 2: the devices moved, a shard elsewhere claims them among new ones.
    second = claims.claim_once(geo_redis, ledger, _record("2:b"), np.arange(50, 150))
    late = claims.claim_once(geo_redis, ledger, _record("late:t"), np.array([7, 149, 150]))
    assert first.tolist() == list(range(100))
    assert second.tolist() == list(range(100, 150))
    assert late.tolist() == [150]


def test_a_redelivered_claim_gets_its_first_result_back_in_every_partition(geo_redis):
    ledger = _ledger(geo_redis)
    first = claims.claim_once(geo_redis, ledger, _record("1:a"), np.arange(40))
    claims.claim_once(geo_redis, ledger, _record("1:b"), np.arange(40, 60))
    assert claims.is_recorded(geo_redis, ledger, _record("1:a"))
    again = claims.claim_once(geo_redis, ledger, _record("1:a"), np.arange(30, 60))
    assert again.tolist() == first.tolist() == list(range(40))
    # A worker that died after claiming half the partitions: the retry claims the rest.
    ids = np.arange(100, 140)
    claims.claim_once(geo_redis, ledger, _record("1:c"), ids)
    for g in range(targeting.PARTITIONS // 2, targeting.PARTITIONS):
        geo_redis.delete(ledger.partition_record(_record("1:c"), g))
        for i in ids[ids % targeting.PARTITIONS == g].tolist():
            geo_redis.setbit(ledger.chunk_key(g, 0), i >> targeting.PARTITION_BITS, 0)
    assert not claims.is_recorded(geo_redis, ledger, _record("1:c"))
    assert claims.claim_once(geo_redis, ledger, _record("1:c"), ids).tolist() == ids.tolist()
    assert claims.claim_once(geo_redis, ledger, _record("1:c"), []).tolist() == ids.tolist()


def test_every_claimed_device_is_read_back_old_layout_included(geo_redis):
    ledger = _ledger(geo_redis)
    big = (5 << (CHUNK_BITS + 4)) + 9
    claims.claim_once(geo_redis, ledger, _record("1:a"), np.array([0, 1, 17, 31, big]))
    ledger.claim(np.array([2, 1000]))
    # A case active across the deploy: a device claimed under the unpartitioned layout.
    geo_redis.setbit(ledger.legacy_key(0), 12345, 1)
    expected = [0, 1, 2, 17, 31, 1000, 12345, big]
    assert claims.alerted_ids(geo_redis, ledger).tolist() == expected
    probe = np.array([*expected, 3, 16, big + 16, 12344])
    assert ledger.snapshot().contains(probe).tolist() == [True] * len(expected) + [False] * 4
