"""Per-target delivery state and the per-case ledger: live in Redis, snapshotted to the database.

State per (message, channel, target) is two bits in a Redis bitfield keyed by the target's
integer id (device id, endpoint id), or a hash field for string targets (FCM topics):
0 untouched, 1 sent, 2 retrying, 3 ended (failed, dead token, dead-lettered, or withdrawn
because the case closed first). `sent` and
`ended` are final, so a redelivered batch skips what is done and never counts twice.
Counters move only on a real state change, in the same Lua call, so they stay exact.

Two words, one meaning each, wherever counts show (API, console, /metrics, snapshots):
`sent` is the provider accepted it (every part, for SMS); `delivered` is the provider's
delivery receipt says the handset has it (every part). Only SMS carriers send receipts, so
`delivered` is a subset of `sent`, counted once per target in a set of its own, and never a
final state of its own (a sent target is already final).

Targets carry no time of their own. For the reach report, each move into `sent` and each new
`delivered` adds its count to a per-second histogram of the message and channel
(`timeline_key`), in the same Lua call as the counters: when the provider's answer was
recorded, to the second (the worker's clock), not when the handset showed it. It lives in
Redis as long as the counters do and is not snapshotted to the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import redis
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from channels.models import DeliveryCount
from ops.platform.clock import utcnow

STATS = (
    "targeted",
    "sent",
    "failed",
    "retrying",
    "dead",
    "dead_lettered",
    "withdrawn",
    "delivered",
)
KEY_TTL_S = 8 * 24 * 3600
FINAL = ("sent", "failed", "dead", "dead_lettered", "withdrawn")


class State(IntEnum):
    NEW = 0
    SENT = 1
    RETRYING = 2
    ENDED = 3


_GET = """
local mode = ARGV[1]
local out = {}
for i = 2, #ARGV do
  if mode == 'b' then
    out[#out + 1] = redis.call('BITFIELD', KEYS[1], 'GET', 'u2', tonumber(ARGV[i]) * 2)[1]
  else
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  end
end
return out
"""

# KEYS: state key, ledger hash[, per-second histogram]. ARGV: mode, new state, stat,
# reopen_stat, ttl, the current unix second, then id/prefix pairs. With a third key, the moves
# are added to its bucket for that second in the same call, so the histogram never disagrees
# with the counters.
_MOVE = """
local mode, new, stat, reopen, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local moved = 0
for i = 7, #ARGV, 2 do
  local id, pfx = ARGV[i], ARGV[i + 1]
  local old
  if mode == 'b' then
    old = redis.call('BITFIELD', KEYS[1], 'GET', 'u2', tonumber(id) * 2)[1]
  else
    old = tonumber(redis.call('HGET', KEYS[1], id) or '0')
  end
  local ok = old ~= new and old ~= 1 and (old ~= 3 or reopen ~= '')
  if ok then
    if mode == 'b' then
      redis.call('BITFIELD', KEYS[1], 'SET', 'u2', tonumber(id) * 2, new)
    else
      redis.call('HSET', KEYS[1], id, new)
    end
    redis.call('HINCRBY', KEYS[2], pfx .. stat, 1)
    if old == 2 then redis.call('HINCRBY', KEYS[2], pfx .. 'retrying', -1) end
    if old == 3 then redis.call('HINCRBY', KEYS[2], pfx .. reopen, -1) end
    moved = moved + 1
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if KEYS[3] and moved > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[6], moved)
  redis.call('EXPIRE', KEYS[3], ttl)
end
return moved
"""

# Count each target once into a ledger field ("targeted", or "delivered" on a receipt).
# KEYS: the once-only bitmap or hash, ledger hash[, per-second histogram]. ARGV: mode, ttl,
# field, the current unix second, then id/prefix pairs (the histogram as in _MOVE).
_ONCE = """
local mode, ttl, field = ARGV[1], ARGV[2], ARGV[3]
local added = 0
for i = 5, #ARGV, 2 do
  local new
  if mode == 'b' then
    new = redis.call('SETBIT', KEYS[1], tonumber(ARGV[i]), 1) == 0
  else
    new = redis.call('HSETNX', KEYS[1], ARGV[i], 1) == 1
  end
  if new then
    redis.call('HINCRBY', KEYS[2], ARGV[i + 1] .. field, 1)
    added = added + 1
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if KEYS[3] and added > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[4], added)
  redis.call('EXPIRE', KEYS[3], ttl)
end
return added
"""


@dataclass(frozen=True)
class Target:
    """A target id and the partner it counts under (0 when none, e.g. a topic)."""

    id: int | str
    partner_id: int = 0


def _prefix(channel: str, partner_id: int) -> str:
    return f"{channel}:{partner_id}:"


STRING_TARGETS = frozenset({"fcm_topic", "sms_broadcast"})


class Ledger:
    """Delivery state and counters of one message on one channel."""

    def __init__(self, client: redis.Redis, message_id: str, channel: str):
        self.client = client
        self.message_id = message_id
        self.channel = channel
        # Devices are dense ints (a bitmap); topics and broadcast languages are strings (a hash).
        self.mode = "h" if channel in STRING_TARGETS else "b"
        # The message id is the hash tag: each script below touches one of these keys and the
        # counters hash together, so on a Redis Cluster all of a message's keys share a slot.
        self.state_key = f"ch:st:{{{message_id}}}:{channel}"
        self.targeted_key = f"ch:tg:{{{message_id}}}:{channel}"
        self.delivered_key = f"ch:dl:{{{message_id}}}:{channel}"
        self.counts_key = counts_key(message_id)
        self._get = client.register_script(_GET)
        self._move = client.register_script(_MOVE)
        self._once = client.register_script(_ONCE)

    def _pairs(self, targets: Iterable[Target]) -> list[str | int]:
        args: list[str | int] = []
        for t in targets:
            args += [t.id, _prefix(self.channel, t.partner_id)]
        return args

    def target(self, targets: Sequence[Target]) -> int:
        """Count targets once each, however often fan-out is redelivered."""
        if not targets:
            return 0
        args = [self.mode, KEY_TTL_S, "targeted", 0, *self._pairs(targets)]
        return int(self._once(keys=[self.targeted_key, self.counts_key], args=args))

    def deliver(self, targets: Sequence[Target]) -> int:
        """Count targets a delivery receipt confirmed, once each however many receipts come;
        how many were new. A receipt also proves the provider accepted it: it is sent."""
        if not targets:
            return 0
        self.move(targets, State.SENT, "sent")
        args = [self.mode, KEY_TTL_S, "delivered", _second(), *self._pairs(targets)]
        keys = [self.delivered_key, self.counts_key, self._timeline("delivered")]
        return int(self._once(keys=keys, args=args))

    def _timeline(self, stat: str) -> str:
        return timeline_key(self.message_id, self.channel, stat)

    def totals(self) -> dict[str, int]:
        """This channel's targeted and final (sent, failed, dead, dead-lettered, withdrawn)
        counts, over every partner."""
        out = {"targeted": 0, "final": 0}
        for (channel, _partner), stats in live_counts(self.client, self.message_id).items():
            if channel == self.channel:
                out["targeted"] += stats["targeted"]
                out["final"] += sum(stats[s] for s in FINAL)
        return out

    def targets(self) -> set[str]:
        """Every string target (topic, broadcast language) ever counted for this message."""
        assert self.mode == "h", "device targets are a bitmap; ask the wave engine"
        return {
            k.decode() if isinstance(k, bytes) else k for k in self.client.hkeys(self.targeted_key)
        }

    def states(self, ids: Sequence[int | str]) -> list[State]:
        """The state of each id."""
        if not ids:
            return []
        return [State(int(v)) for v in self._get(keys=[self.state_key], args=[self.mode, *ids])]

    def pending(self, ids: Sequence[int | str]) -> list[int | str]:
        """The ids still to send: neither sent nor ended."""
        return [i for i, s in zip(ids, self.states(ids), strict=True) if s in (0, 2)]

    def move(self, targets: Sequence[Target], state: State, stat: str, *, reopen: str = "") -> int:
        """Move targets to a state and count `stat` for each one that really moved."""
        if not targets:
            return 0
        args = [self.mode, int(state), stat, reopen, KEY_TTL_S, _second(), *self._pairs(targets)]
        keys = [self.state_key, self.counts_key]
        if stat in TIMED:
            keys.append(self._timeline(stat))
        return int(self._move(keys=keys, args=args))


def _second() -> int:
    """The current unix second (the clock the rest of the ledger uses)."""
    return int(utcnow().timestamp())


TIMED = ("sent", "delivered")


def timeline_key(message_id: str, channel: str, stat: str) -> str:
    """The Redis hash of a message's per-second counts of one stat on one channel,
    'unix second' -> count (stat: sent or delivered)."""
    return f"ch:tl:{{{message_id}}}:{channel}:{stat}"


def timeline(
    client: redis.Redis, message_id: str, channel: str, stat: str
) -> list[tuple[int, int]]:
    """(unix second, count) of a message's stat on one channel, oldest first."""
    raw = client.hgetall(timeline_key(message_id, channel, stat))
    return sorted((int(k), int(v)) for k, v in raw.items())


def counts_key(message_id: str) -> str:
    """The Redis hash with a message's counters, 'channel:partner:stat' -> count."""
    return f"ch:ledger:{{{message_id}}}"


def parse_counts(raw: dict) -> dict[tuple[str, int], dict[str, int]]:
    """{(channel, partner): {stat: n}} from a counters hash."""
    out: dict[tuple[str, int], dict[str, int]] = {}
    for field, value in raw.items():
        field = field.decode() if isinstance(field, bytes) else field
        channel, partner, stat = field.split(":", 2)
        row = out.setdefault((channel, int(partner)), dict.fromkeys(STATS, 0))
        row[stat] = int(value)
    return out


def live_counts(client: redis.Redis, message_id: str) -> dict[tuple[str, int], dict[str, int]]:
    """The live counters of a message."""
    return parse_counts(client.hgetall(counts_key(message_id)))


def persist(session: Session, client: redis.Redis, message_id: str, case_id: str) -> None:
    """Snapshot a message's live counters into delivery_counts (idempotent: absolute values)."""
    counts = live_counts(client, message_id)
    if not counts:
        return
    rows = [
        {
            "message_id": message_id,
            "channel": channel,
            "partner_id": partner,
            "case_id": case_id,
            "updated_at": utcnow(),
            **stats,
        }
        for (channel, partner), stats in counts.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(DeliveryCount).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["message_id", "channel", "partner_id"],
        set_={k: getattr(stmt.excluded, k) for k in (*STATS, "updated_at")},
    )
    session.execute(stmt)


def stored_counts(session: Session, message_id: str) -> dict[tuple[str, int], dict[str, int]]:
    """The last snapshot of a message's counters (when Redis no longer has them)."""
    rows = session.scalars(select(DeliveryCount).where(DeliveryCount.message_id == message_id))
    return {(r.channel, r.partner_id): {s: getattr(r, s) for s in STATS} for r in rows}
