"""Claiming a shard's devices for a case exactly once, even if the claiming task is redelivered.

The claim (set the device's bit in the case's alerted bitmap) and the record of what this shard
task claimed are written by one Lua script, so a worker killed between them cannot lose devices:
a redelivered task gets the same claimed ids back and fans them out again (the channel layer
drops repeats per message), and a device another wave already claimed is never claimed twice.
"""

from __future__ import annotations

import numpy as np
import redis

from geo.index import CHUNK_BITS
from geo.targeting import AlertLedger

CLAIM_TTL_SECONDS = 14 * 24 * 3600

# KEYS[1]: the record of this task's claim; KEYS[2..]: the bitmap chunks it touches.
# ARGV[1]: packed (u32 key number, u32 offset) pairs; ARGV[3]: packed u32 chunk number per key.
# The record and the reply hold (chunk number, offset) pairs, independent of the key order.
_CLAIM_ONCE = """
local done = redis.call('GET', KEYS[1])
if done then return done end
local pairs, chunks = ARGV[1], ARGV[3]
local out = {}
for i = 0, #pairs / 8 - 1 do
  local k, o = struct.unpack('<I4I4', pairs, i * 8 + 1)
  if redis.call('SETBIT', KEYS[k], o, 1) == 0 then
    local c = struct.unpack('<I4', chunks, (k - 2) * 4 + 1)
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
    first call's result whatever ids it is given. All keys share the case's hash tag, so the
    script stays on one Redis Cluster slot."""
    ids = np.unique(np.asarray(device_ids, dtype=np.int64))
    chunks = ids >> CHUNK_BITS
    chunk_list = np.unique(chunks).astype("<u4")
    pairs = np.empty(len(ids), dtype=_PAIR)
    # Lua keys are 1-based and KEYS[1] is the record, so chunk keys start at 2.
    pairs["key"] = np.searchsorted(chunk_list, chunks) + 2
    pairs["off"] = ids & ((1 << CHUNK_BITS) - 1)
    raw = client.register_script(_CLAIM_ONCE)(
        keys=[record_key, *[ledger.store.key(int(c)) for c in chunk_list]],
        args=[pairs.tobytes(), CLAIM_TTL_SECONDS, chunk_list.tobytes()],
    )
    return decode(raw)


def decode(raw: bytes | None) -> np.ndarray:
    """The device ids of a claim record (or of the claim script's reply)."""
    got = np.frombuffer(raw or b"", dtype=_PAIR)
    return (got["key"].astype(np.int64) << CHUNK_BITS) + got["off"].astype(np.int64)


def alerted_ids(client: redis.Redis, ledger: AlertLedger) -> np.ndarray:
    """Every device id set in a case's alerted bitmap."""
    out = []
    pattern = ledger.store.key(0)[: -len("0")] + "*"
    for key in client.scan_iter(match=pattern, count=1000):
        chunk = int(key.decode().rsplit(":", 1)[1])
        bits = np.unpackbits(np.frombuffer(client.get(key) or b"", dtype=np.uint8))
        out.append(np.flatnonzero(bits).astype(np.int64) + (chunk << CHUNK_BITS))
    return np.sort(np.concatenate(out)) if out else np.empty(0, dtype=np.int64)
