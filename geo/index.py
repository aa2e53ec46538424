"""The live device-location index in Redis, written by partner bulk uploads.

Layout (all keys under ``prefix``; the ``{...}`` parts are Redis Cluster hash tags, so every
key of one shard, one map chunk or one ledger lands on one slot and scripts stay single-slot):

* ``{prefix}:{s<shard hex>}:log`` and ``...:tail`` - per resolution-5 shard, a packed log of
  ``RECORD``s in two strings. Uploads go to the tail: a batch costs one ``APPEND`` per touched
  shard. Compaction rewrites the log as a header record (``FLAG_HEADER``: how many records
  follow, unique per device and sorted by id) and the compacted records, and cuts what it read
  off the tail. Two strings, because Redis doubles a string's allocation on ``APPEND``: a log
  appended to directly would hold up to twice its length in memory right after a compaction.
* ``{prefix}:{m<chunk>}:map`` - the device -> current shard map, as a Redis string of u32
  slots indexed by device id (``BITFIELD ... SET u32 #id``, which returns the old value in the
  same atomic step). A device that moved gets a tombstone appended to its old shard. Ids are
  expected to be dense (a registry sequence): each chunk of 2^24 ids takes 64 MB when full.
* ``{prefix}:shards`` - set of shard cells that have a log (for purge and compaction sweeps).
* ``{prefix}:compact-due`` - set of shard cells whose tail holds more than ``COMPACT_MIN_TAIL``
  records. ``compact_due`` drains it every few seconds and compacts those whose tail also passed
  ``compact_ratio`` of the compacted records, so a shard stays within a constant factor of one
  record per device however often phones report. (Ingest marks on the tail length that APPEND
  returns, which costs it nothing; the sweep reads the headers.)

Reads GET a shard's log and tail, decode them with numpy, keep the newest record per device and
drop tombstones and stale locations. "Newest" is arrival order, which the map also follows: a
partner must upload a device's locations in time order (within a batch, the last row wins).

Two concurrent batches moving the same device can leave it live in two shards until the next
compaction of either; the per-case alerted bitmap still alerts it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import redis

from geo import cells
from ops.platform import redis_client

RECORD = np.dtype(
    [
        ("device_id", "<i8"),
        ("cell", "<u8"),  # the stored coarse location (H3 res 10 or 11)
        # Cell centre in Earth-centred metres * 100, denormalised so reads never call h3.
        ("x", "<i4"),
        ("y", "<i4"),
        ("z", "<i4"),
        ("updated_at", "<u4"),  # epoch seconds
        ("radius_m", "u1"),  # bound on the cell's circumradius, whole metres
        ("flags", "u1"),
    ]
)
FLAG_TOMBSTONE = 1
FLAG_HEADER = 2  # cell: compacted records after it; updated_at: compaction generation
CHUNK_BITS = 24
DEFAULT_STALENESS = timedelta(hours=24)
DEFAULT_RETENTION = timedelta(days=30)
# A shard is due for compaction once its tail holds more than this share of its compacted head
# (and at least COMPACT_MIN_TAIL records): the log stays under (1 + ratio) records per device,
# and each appended record is rewritten about (1 + ratio) / ratio times.
DEFAULT_COMPACT_RATIO = 0.5
COMPACT_MIN_TAIL = 256

# BITFIELD SET over a packed batch; returns the old values packed. One script call per key
# keeps it cluster-safe, and packing in Lua avoids building millions of RESP arguments in Python.
_BITFIELD_SET = """
local typ, offs, vals = ARGV[1], ARGV[2], ARGV[3]
local n = #offs / 4
local out, args = {}, {}
for i = 0, n - 1 do
  local o = struct.unpack('<I4', offs, i * 4 + 1)
  local v = struct.unpack('<I4', vals, i * 4 + 1)
  args[#args + 1] = 'SET'; args[#args + 1] = typ
  args[#args + 1] = '#' .. o; args[#args + 1] = v
  if #args >= 4000 or i == n - 1 then
    local r = redis.call('BITFIELD', KEYS[1], unpack(args))
    for _, x in ipairs(r) do out[#out + 1] = struct.pack('<I4', x) end
    args = {}
  end
end
return table.concat(out)
"""

# Install a compacted log (ARGV[1]) in place of the ARGV[2] log bytes and ARGV[3] tail bytes
# that were read, keeping anything appended since: compaction never loses a concurrent upload.
# The log must still start as it did when read (ARGV[4], "" for no log): a compaction that won
# meanwhile wrote a header with a new generation and cut the tail, and writing over its output
# would drop records, so return -1 instead. (Bytes after ARGV[2] in the log come from writers
# older than the tail key.)
_INSTALL_COMPACTED = """
local log_cut, tail_cut, first = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local log_len = redis.call('STRLEN', KEYS[1])
if log_len < log_cut or redis.call('STRLEN', KEYS[2]) < tail_cut then return -1 end
if #first == 0 then
  if log_len > 0 then return -1 end
elseif redis.call('GETRANGE', KEYS[1], 0, #first - 1) ~= first then
  return -1
end
if log_len > log_cut then
  redis.call('SET', KEYS[1], ARGV[1] .. redis.call('GETRANGE', KEYS[1], log_cut, -1))
else
  redis.call('SET', KEYS[1], ARGV[1])  -- the common case: no copy of the compacted records
end
if tail_cut > 0 then
  local tail = redis.call('GETRANGE', KEYS[2], tail_cut, -1)
  if #tail == 0 then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], tail) end
end
return #ARGV[1]
"""


def epoch(t: datetime) -> int:
    """Whole epoch seconds of an aware datetime."""
    if t.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return int(t.timestamp())


class BitfieldStore:
    """Helper for chunked Redis strings addressed by a 64-bit id (maps and bitmaps)."""

    def __init__(self, client: redis.Redis, key_format: str, typ: str) -> None:
        self.client = client
        self.key_format = key_format
        self.typ = typ
        self._script = client.register_script(_BITFIELD_SET)

    def key(self, chunk: int) -> str:
        return self.key_format.format(chunk=chunk)

    def set_many(self, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Atomically (per chunk) write values at ids and return the previous values."""
        ids = np.asarray(ids, dtype=np.int64)
        if (ids < 0).any():
            raise ValueError("device ids must be non-negative")
        values = np.broadcast_to(np.asarray(values, dtype=np.uint32), ids.shape)
        chunks = ids >> CHUNK_BITS
        old = np.zeros(len(ids), dtype=np.uint32)
        uniq = np.unique(chunks)
        pipe = self.client.pipeline(transaction=False)
        selections = []
        for chunk in uniq.tolist():
            sel = np.flatnonzero(chunks == chunk) if len(uniq) > 1 else np.arange(len(ids))
            offs = (ids[sel] & ((1 << CHUNK_BITS) - 1)).astype("<u4")
            redis_client.queue_script(
                pipe,
                self._script,
                [self.key(chunk)],
                [self.typ, offs.tobytes(), values[sel].astype("<u4").tobytes()],
            )
            selections.append(sel)
        for sel, raw in zip(selections, pipe.execute(), strict=True):
            old[sel] = np.frombuffer(raw, dtype="<u4")
        return old


class LocationIndex:
    """Device locations sharded by resolution-5 H3 cell, stored as packed logs in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "geo",
        staleness: timedelta = DEFAULT_STALENESS,
        compact_ratio: float | None = DEFAULT_COMPACT_RATIO,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.staleness = staleness
        self.compact_ratio = compact_ratio  # None: only the periodic compaction
        self.map = BitfieldStore(client, prefix + ":{{m{chunk}}}:map", "u32")
        self._install = client.register_script(_INSTALL_COMPACTED)

    # -- keys ---------------------------------------------------------------------------

    def log_key(self, shard: int) -> str:
        return f"{self.prefix}:{{s{int(shard):x}}}:log"

    def tail_key(self, shard: int) -> str:
        return f"{self.prefix}:{{s{int(shard):x}}}:tail"

    @property
    def shards_key(self) -> str:
        return f"{self.prefix}:shards"

    @property
    def due_key(self) -> str:
        return f"{self.prefix}:compact-due"

    # -- writes -------------------------------------------------------------------------

    def ingest(
        self,
        device_ids: np.ndarray,
        cells_: np.ndarray,
        updated_at: np.ndarray | datetime,
    ) -> int:
        """Record a batch of locations (later rows win); returns the number of devices written."""
        ids = np.asarray(device_ids, dtype=np.int64)
        cell_arr = np.asarray(cells_, dtype=np.uint64)
        if isinstance(updated_at, datetime):
            ts = np.full(len(ids), epoch(updated_at), dtype=np.uint32)
        else:
            ts = np.asarray(updated_at, dtype=np.uint32)
        if not (len(ids) == len(cell_arr) == len(ts)):
            raise ValueError("device_ids, cells and updated_at must have the same length")
        if len(ids) == 0:
            return 0
        res = cells.cell_res(cell_arr)
        if ((res < cells.DEVICE_RES) | (res > 15)).any():
            raise ValueError(f"cells must be H3 cells of resolution >= {cells.DEVICE_RES}")
        # Keep the last row per device in the batch.
        _, rev_index = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - rev_index)
        ids, cell_arr, ts = ids[keep], cell_arr[keep], ts[keep]

        shards = cells.parent(cell_arr)
        codes = cells.shard_code(shards).astype(np.uint32) + np.uint32(1)  # 0 means "no shard"
        old_codes = self.map.set_many(ids, codes)

        rec = make_records(ids, cell_arr, ts)
        moved = (old_codes != 0) & (old_codes != codes)
        tomb = self._tombstones(ids[moved], ts[moved])
        tomb_shards = cells.shard_from_code(old_codes[moved] - np.uint32(1))
        self._append(np.concatenate([rec, tomb]), np.concatenate([shards, tomb_shards]))
        return len(ids)

    def remove(self, device_ids: Iterable[int], at: datetime | None = None) -> int:
        """Forget devices (opt-out, deletion); returns how many were indexed."""
        ids = np.unique(np.fromiter(device_ids, dtype=np.int64))
        if len(ids) == 0:
            return 0
        old_codes = self.map.set_many(ids, np.uint32(0))
        present = old_codes != 0
        stamp = epoch(at or datetime.now(UTC))
        tomb = self._tombstones(ids[present], np.full(int(present.sum()), stamp, np.uint32))
        self._append(tomb, cells.shard_from_code(old_codes[present] - np.uint32(1)))
        return int(present.sum())

    @staticmethod
    def _tombstones(ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
        tomb = np.zeros(len(ids), dtype=RECORD)
        tomb["device_id"] = ids
        tomb["updated_at"] = ts
        tomb["flags"] = FLAG_TOMBSTONE
        return tomb

    def _append(self, records: np.ndarray, shards: np.ndarray) -> None:
        if len(records) == 0:
            return
        # Stable sort keeps arrival order within a shard, which reads rely on.
        order = np.argsort(shards, kind="stable")
        records, shards = records[order], shards[order]
        uniq, starts = np.unique(shards, return_index=True)
        ends = np.append(starts[1:], len(shards))
        pipe = self.client.pipeline(transaction=False)
        for shard, a, b in zip(uniq.tolist(), starts.tolist(), ends.tolist(), strict=True):
            pipe.append(self.tail_key(shard), records[a:b].tobytes())
        pipe.sadd(self.shards_key, *uniq.tolist())
        tail_bytes = np.array(pipe.execute()[:-1], dtype=np.int64)
        if self.compact_ratio is not None:
            due = uniq[tail_bytes > COMPACT_MIN_TAIL * RECORD.itemsize]
            if len(due):
                self.client.sadd(self.due_key, *due.tolist())

    # -- reads --------------------------------------------------------------------------

    def shards(self) -> np.ndarray:
        """All shard cells that hold a log."""
        return np.array(
            sorted(int(s) for s in self.client.smembers(self.shards_key)), dtype=np.uint64
        )

    def read_log(self, shard: int) -> tuple[np.ndarray, int]:
        """Raw records of a shard (log, then tail) and the number of leading compacted ones."""
        return self.read_logs([shard])[0]

    def read_logs(self, shards: list[int]) -> list[tuple[np.ndarray, int]]:
        """``read_log`` of several shards in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for shard in shards:
            pipe.get(self.log_key(shard))
            pipe.get(self.tail_key(shard))
        res = pipe.execute()
        return [
            decode(log or b"", tail or b"") for log, tail in zip(res[::2], res[1::2], strict=True)
        ]

    def record_counts(self, shards: list[int]) -> list[int]:
        """Records held per shard (one pipelined STRLEN per key): an upper bound on its devices."""
        pipe = self.client.pipeline(transaction=False)
        for shard in shards:
            pipe.strlen(self.log_key(shard))
            pipe.strlen(self.tail_key(shard))
        res = pipe.execute()
        return [(a + b) // RECORD.itemsize for a, b in zip(res[::2], res[1::2], strict=True)]

    def live(self, shard: int, now: datetime | None = None) -> np.ndarray:
        """Current, non-stale records of a shard (one per device)."""
        recs, compacted = self.read_log(shard)
        oldest = epoch(now or datetime.now(UTC)) - int(self.staleness.total_seconds())
        return latest(recs, compacted, oldest)

    # -- maintenance --------------------------------------------------------------------

    def compact(self, shard: int, purge_before: datetime | None = None, attempts: int = 3) -> int:
        """Rewrite a shard log to one record per live device, sorted by device id; returns the
        records kept (0 if concurrent compactions of the same shard won every attempt)."""
        keys = [self.log_key(shard), self.tail_key(shard)]
        for _ in range(attempts):
            blob, tail = (b or b"" for b in self.client.mget(keys))
            if not (blob or tail):
                return 0
            recs, compacted = decode(blob, tail)
            keep = latest(recs, compacted, 0)
            if purge_before is not None:
                keep = keep[keep["updated_at"] >= epoch(purge_before)]
                gone = np.setdiff1d(latest_ids_any(recs, compacted), keep["device_id"])
                if len(gone):
                    self._clear_map_if(gone, shard)
            # Sorted by id, a head lets reads drop superseded records with a binary search;
            # head and tail are each sorted already, so this stable sort is a linear merge.
            keep = keep[np.argsort(keep["device_id"], kind="stable")]
            first = np.frombuffer(blob[: RECORD.itemsize], dtype=RECORD)
            gen = (
                int(first["updated_at"][0]) if len(first) and first["flags"][0] & FLAG_HEADER else 0
            )
            header = np.zeros(1, dtype=RECORD)
            header["device_id"] = -1
            header["flags"] = FLAG_HEADER
            header["cell"] = len(keep)
            # A header always stays, even over no records: its generation keeps the check in
            # _INSTALL_COMPACTED exact.
            header["updated_at"] = (gen + 1) & 0xFFFFFFFF
            new_blob = header.tobytes() + keep.tobytes()
            args = [new_blob, len(blob), len(tail), blob[: RECORD.itemsize]]
            if self._install(keys=keys, args=args) >= 0:
                return len(keep)
        return 0

    def compact_due(self, limit: int = 10_000) -> int:
        """Compact the marked shards whose tail passed ``compact_ratio`` of their compacted
        records (the frequent sweep); returns how many were compacted. The others are unmarked
        until their next upload. A shard popped by a worker that dies stays uncompacted until
        its next upload marks it again, or the hourly compaction."""
        ratio = DEFAULT_COMPACT_RATIO if self.compact_ratio is None else self.compact_ratio
        seen = done = 0
        while seen < limit:
            popped = self.client.spop(self.due_key, min(256, limit - seen))
            if not popped:
                break
            seen += len(popped)
            shards = [int(s) for s in popped]
            pipe = self.client.pipeline(transaction=False)
            for shard in shards:
                pipe.getrange(self.log_key(shard), 0, RECORD.itemsize - 1)
                pipe.strlen(self.tail_key(shard))
            res = pipe.execute()
            for shard, over in zip(shards, tail_over(res[1::2], res[::2], ratio), strict=True):
                if over:
                    self.compact(shard)
                    done += 1
        return done

    def _clear_map_if(self, ids: np.ndarray, shard: int) -> None:
        """Zero map slots of purged devices, restoring any that moved meanwhile."""
        code = int(cells.shard_code(np.array([shard], np.uint64))[0]) + 1
        old = self.map.set_many(ids, np.uint32(0))
        moved = old != code
        if moved.any():  # a newer upload moved them elsewhere: put their slot back
            self.map.set_many(ids[moved], old[moved])

    def purge(self, before: datetime) -> int:
        """Drop devices whose latest location is older than ``before``; returns devices kept."""
        return sum(self.compact(int(s), purge_before=before) for s in self.shards())

    def compact_all(self) -> int:
        """Compact every shard (the periodic job); returns the records kept."""
        return sum(self.compact(int(s)) for s in self.shards())


def make_records(device_ids: np.ndarray, cells_: np.ndarray, updated_at: np.ndarray) -> np.ndarray:
    """Location records for devices in these cells (centre and radius bound filled in)."""
    cell_arr = np.asarray(cells_, dtype=np.uint64)
    lat, lon = cells.cell_centers(cell_arr)
    rec = np.zeros(len(cell_arr), dtype=RECORD)
    rec["device_id"] = device_ids
    rec["cell"] = cell_arr
    xyz = np.rint(cells.ecef(lat, lon) * 100.0).astype(np.int32)
    rec["x"], rec["y"], rec["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    rec["updated_at"] = updated_at
    rec["radius_m"] = cells.radius_bounds(cell_arr)
    return rec


def decode(blob: bytes, tail: bytes = b"") -> tuple[np.ndarray, int]:
    """Records of a log and its tail, and how many leading records a compaction left unique."""
    recs = np.frombuffer(blob + tail if tail and blob else blob or tail, dtype=RECORD)
    if len(recs) and recs["flags"][0] & FLAG_HEADER:
        return recs[1:], int(recs["cell"][0])
    return recs, 0


_NO_RECORD = bytes(RECORD.itemsize)


def tail_over(tail_lengths: list[int], firsts: list[bytes], ratio: float) -> np.ndarray:
    """Mask of shards (by tail byte length and the log's first record) whose tail passed
    ``ratio`` times the compacted records and ``COMPACT_MIN_TAIL``."""
    first = np.frombuffer(
        b"".join(f if len(f) == RECORD.itemsize else _NO_RECORD for f in firsts), dtype=RECORD
    )
    head = np.where((first["flags"] & FLAG_HEADER) != 0, first["cell"], 0).astype(np.int64)
    tail = np.asarray(tail_lengths, dtype=np.int64) // RECORD.itemsize
    return tail > np.maximum(COMPACT_MIN_TAIL, ratio * head)


def _last_per_device(recs: np.ndarray) -> np.ndarray:
    """The last arrival of each device among ``recs``, sorted by device id."""
    ids = recs["device_id"]
    n = len(ids)
    if n and ids.min() >= 0 and int(ids.max()) < (2**62) // n:
        # Sort (id, arrival) packed in one int64: a plain sort is several times faster than a
        # stable argsort, and the last entry of each id run is its last arrival.
        key = np.sort(ids * n + np.arange(n))
        sid = key // n
        last = np.append(sid[1:] != sid[:-1], True)
        return recs[key[last] % n]
    order = np.argsort(ids, kind="stable")
    sid = ids[order]
    last = np.append(sid[1:] != sid[:-1], True) if n else np.zeros(0, dtype=bool)
    return recs[order[last]]


def _superseded(head_ids: np.ndarray, newer_ids: np.ndarray) -> np.ndarray:
    """Mask of ``head_ids`` that appear in ``newer_ids`` (sorted, unique)."""
    h = len(head_ids)
    if h > 1 and not (head_ids[1:] > head_ids[:-1]).all():  # a head from before sorted heads
        return np.isin(head_ids, newer_ids)
    pos = np.searchsorted(head_ids, newer_ids)
    found = pos < h
    found[found] = head_ids[pos[found]] == newer_ids[found]
    out = np.zeros(h, dtype=bool)
    out[pos[found]] = True
    return out


def latest(recs: np.ndarray, compacted: int, oldest: int) -> np.ndarray:
    """Newest record per device, without tombstones or records updated before ``oldest``."""
    if compacted < len(recs):
        tail = _last_per_device(recs[compacted:])
        head = recs[:compacted]
        if len(head):
            head = head[~_superseded(head["device_id"], tail["device_id"])]
        recs = np.concatenate([head, tail])
    ok = (recs["flags"] & FLAG_TOMBSTONE) == 0
    if oldest > 0:
        ok &= recs["updated_at"] >= oldest
    # A compacted, fresh shard is the common case: skip the copy.
    return recs if ok.all() else recs[ok]


def latest_ids_any(recs: np.ndarray, compacted: int) -> np.ndarray:
    """Ids of devices whose newest record in this log is a location (not a tombstone)."""
    return latest(recs, compacted, 0)["device_id"]
