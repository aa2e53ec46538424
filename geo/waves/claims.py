"""Claiming a shard's devices for a case exactly once, even if the claiming task is redelivered.

The claim (set the device's bit in the case's alerted bitmap) and the record of what this shard
task claimed are written by one Lua script, so a worker killed between them cannot lose devices:
a redelivered task gets the same claimed ids back and fans them out again (the channel layer
drops repeats per message), and a device another wave already claimed is never claimed twice.

The bitmap is partitioned by device id (`geo.targeting.PARTITIONS`), so a claim runs one script
per partition, each on the partition's own hash tag with its own record: every script stays on
one Redis Cluster slot and a case's claims spread over the cluster's nodes. Each partition's
script is idempotent on its own, so a claim interrupted between partitions is healed by the
retry: recorded partitions return their record, the others claim then.

Records written before partitioning (``claimed:{<case>}:...``) are not read: a shard task
redelivered across the deploy claims again in the new layout (see `AlertLedger`).
"""

from __future__ import annotations

import numpy as np
import redis

from geo.index import CHUNK_BITS
from geo.targeting import LEGACY_CHUNKS, PARTITIONS, AlertLedger, join_ids, split_ids
from ops.platform import redis_client

CLAIM_TTL_SECONDS = 14 * 24 * 3600

# KEYS[1]: the partition's record of this task's claim; KEYS[2]: the partition's set of chunk
# numbers; KEYS[3..]: the bitmap chunks the claim touches.
# ARGV[1]: packed (u32 key number, u32 offset) pairs; ARGV[3]: packed u32 chunk number per key.
# The record and the reply hold (chunk number, offset) pairs, independent of the key order.
_CLAIM_ONCE = """
local done = redis.call('GET', KEYS[1])
if done then return done end
local pairs, chunks = ARGV[1], ARGV[3]
for k = 3, #KEYS do
  redis.call('SADD', KEYS[2], struct.unpack('<I4', chunks, (k - 3) * 4 + 1))
end
local out = {}
for i = 0, #pairs / 8 - 1 do
  local k, o = struct.unpack('<I4I4', pairs, i * 8 + 1)
  if redis.call('SETBIT', KEYS[k], o, 1) == 0 then
    local c = struct.unpack('<I4', chunks, (k - 3) * 4 + 1)
    out[#out + 1] = struct.pack('<I4I4', c, o)
  end
end
local packed = table.concat(out)
redis.call('SET', KEYS[1], packed, 'EX', tonumber(ARGV[2]))
return packed
"""
_PAIR = np.dtype([("key", "<u4"), ("off", "<u4")])


def claim_once(
    client: redis.Redis, ledger: AlertLedger, record_key: str, device_ids: np.ndarray
) -> np.ndarray:
    """Claim `device_ids` in the ledger; a repeat call with the same record key returns the
    first call's result whatever ids it is given (sorted ids).

    `record_key` carries the case's hash tag ``{<case>}``; partition g's record is that key
    under ``{<case>:<g>}`` (`AlertLedger.partition_record`). Every partition gets a script, an
    empty one too (it records that it claimed nothing), so `is_recorded` can tell a finished
    claim from one interrupted between partitions.
    """
    ids = np.unique(np.asarray(device_ids, dtype=np.int64))
    if (ids < 0).any():
        raise ValueError("device ids must be non-negative")
    part, chunks, offs = split_ids(ids)
    script = client.register_script(_CLAIM_ONCE)
    pipe = client.pipeline(transaction=False)
    for g in range(PARTITIONS):
        sel = part == g
        chunk_list = np.unique(chunks[sel]).astype("<u4")
        pairs = np.empty(int(sel.sum()), dtype=_PAIR)
        # Lua keys are 1-based; KEYS[1] is the record and KEYS[2] the chunk set.
        pairs["key"] = np.searchsorted(chunk_list, chunks[sel]) + 3
        pairs["off"] = offs[sel]
        redis_client.queue_script(
            pipe,
            script,
            [
                ledger.partition_record(record_key, g),
                ledger.chunks_key(g),
                *[ledger.chunk_key(g, int(c)) for c in chunk_list],
            ],
            [pairs.tobytes(), CLAIM_TTL_SECONDS, chunk_list.tobytes()],
        )
    got = [decode(raw, g) for g, raw in enumerate(pipe.execute())]
    return np.sort(np.concatenate(got))


def is_recorded(client: redis.Redis, ledger: AlertLedger, record_key: str) -> bool:
    """Whether a claim with this record key finished in every partition."""
    pipe = client.pipeline(transaction=False)
    for g in range(PARTITIONS):
        pipe.exists(ledger.partition_record(record_key, g))
    return all(pipe.execute())


def decode(raw: bytes | None, partition: int) -> np.ndarray:
    """The device ids of one partition's claim record (or of its claim script's reply)."""
    got = np.frombuffer(raw or b"", dtype=_PAIR)
    return join_ids(partition, got["key"], got["off"])


def alerted_ids(client: redis.Redis, ledger: AlertLedger) -> np.ndarray:
    """Every device id set in a case's alerted bitmap: each partition's chunks (listed in its
    chunk set, no SCAN) and the chunks of the unpartitioned layout, if any."""
    pipe = client.pipeline(transaction=False)
    for g in range(PARTITIONS):
        pipe.smembers(ledger.chunks_key(g))
    listed = [(g, int(c)) for g, cs in enumerate(pipe.execute()) for c in cs]
    pipe = client.pipeline(transaction=False)
    for g, c in listed:
        pipe.get(ledger.chunk_key(g, c))
    for c in range(LEGACY_CHUNKS):
        pipe.get(ledger.legacy_key(c))
    raws = pipe.execute()
    out = []
    for (g, c), raw in zip(listed, raws, strict=False):
        bits = np.unpackbits(np.frombuffer(raw or b"", dtype=np.uint8))
        off = np.flatnonzero(bits)
        out.append(join_ids(g, np.full(len(off), c), off))
    for c, raw in enumerate(raws[len(listed) :]):
        bits = np.unpackbits(np.frombuffer(raw or b"", dtype=np.uint8))
        out.append(np.flatnonzero(bits).astype(np.int64) + (c << CHUNK_BITS))
    return np.unique(np.concatenate(out)) if out else np.empty(0, dtype=np.int64)
