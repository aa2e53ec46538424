"""The ledger is the truth, not the broker: a periodic reconciler finishes what a queue dropped.

Every unit of channel work that is queued promises an answer by a deadline: `expect` records
the (message, channel) in one sorted set, scored by when its targets should all be final (the
unit's countdown plus `owner_grace_s`); each finished unit pushes the deadline on while targets
remain open, and takes the entry off once every target is final (sent, dead, failed,
dead-lettered or withdrawn).

`reconcile` (beat, every `reconcile_interval_s`) takes the entries past their deadline, claims
each one atomically (so reconcilers on several machines never double up), reads the ledger for
targets that were counted but are still untouched or retrying, and queues them again. That
covers a dropped broker message, a retry whose publish failed, a killed worker (without
waiting for the broker's visibility timeout) and exhausted Celery retries. Re-queued batches
skip whatever was finished meanwhile, so the worst case is a duplicate of sends in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis

from channels.ledger import KEY_TTL_S, STRING_TARGETS, Ledger

OPEN = "ch:open"  # member "message_id|channel", score: deadline (epoch seconds)
REQUEUED = "ch:requeued:"  # + message_id: hash channel -> targets the reconciler re-queued
BATCH = 500  # targets per re-queued unit

# Claim an overdue entry: push its deadline on only if it is still overdue (one winner).
_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
"""


def claim_overdue(client: redis.Redis, key: str, member: str, now: float, grace_s: float) -> bool:
    """Take one overdue entry of a deadline set for this process (its deadline moves on)."""
    return bool(client.register_script(_CLAIM)(keys=[key], args=[member, now, now + grace_s]))


def _member(message_id: str, channel: str) -> str:
    return f"{message_id}|{channel}"


def expect(client: redis.Redis, message_id: str, channel: str, within_s: float) -> None:
    """This message's targets on this channel should all be final within `within_s` seconds."""
    client.zadd(OPEN, {_member(message_id, channel): time.time() + within_s}, gt=True)


def progress(client: redis.Redis, message_id: str, channel: str, grace_s: float) -> bool:
    """After a unit ran: forget the entry if every target is final, else push its deadline on.
    True when targets remain open."""
    counts = Ledger(client, message_id, channel).totals()
    if counts["targeted"] <= counts["final"]:
        client.zrem(OPEN, _member(message_id, channel))
        return False
    client.zadd(OPEN, {_member(message_id, channel): time.time() + grace_s}, xx=True, gt=True)
    return True


def overdue(client: redis.Redis, now: float | None = None) -> int:
    """How many (message, channel) entries are past their deadline: stuck, not in progress."""
    return int(client.zcount(OPEN, "-inf", time.time() if now is None else now))


@dataclass(frozen=True)
class Stuck:
    """A message's channel with targets still open past its deadline."""

    message_id: str
    channel: str
    open_targets: int
    overdue_s: float


def stuck(client: redis.Redis, now: float | None = None, limit: int = 100) -> list[Stuck]:
    """The entries past their deadline, most overdue first, with their open target counts."""
    now = time.time() if now is None else now
    out: list[Stuck] = []
    rows = client.zrangebyscore(OPEN, "-inf", now, start=0, num=limit, withscores=True)
    for raw, deadline in rows:
        member = raw.decode() if isinstance(raw, bytes) else raw
        message_id, channel = member.rsplit("|", 1)
        counts = Ledger(client, message_id, channel).totals()
        remaining = max(0, counts["targeted"] - counts["final"])
        out.append(Stuck(message_id, channel, remaining, now - float(deadline)))
    return out


def stuck_channels(client: redis.Redis, message_id: str, channels: list[str]) -> list[str]:
    """Which of a message's channels are past their deadline (stuck, not in progress)."""
    if not channels:
        return []
    now = time.time()
    scores = client.zmscore(OPEN, [_member(message_id, c) for c in channels])
    return [c for c, score in zip(channels, scores, strict=True) if score and score <= now]


def requeued(client: redis.Redis, message_id: str) -> dict[str, int]:
    """Targets of a message the reconciler queued again, per channel."""
    raw = client.hgetall(REQUEUED + message_id)
    return {_text(k): int(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def open_targets(led: Ledger) -> list[int | str]:
    """Targets counted for the message that are not final (untouched or retrying)."""
    if led.channel in STRING_TARGETS:
        targeted: list[int | str] = sorted(led.targets())
    else:
        raw = led.client.get(led.targeted_key) or b""
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))  # big-endian, as SETBIT
        targeted = np.flatnonzero(bits).tolist()
    out: list[int | str] = []
    for start in range(0, len(targeted), 5000):
        chunk = targeted[start : start + 5000]
        out += [t for t, s in zip(chunk, led.states(chunk), strict=True) if s in (0, 2)]
    return out


@dataclass(frozen=True)
class Requeued:
    message_id: str
    channel: str
    targets: int


def reconcile(
    client: redis.Redis,
    requeue: Callable[[str, str, list], None],
    grace_s: float,
    *,
    now: float | None = None,
    limit: int = 200,
) -> list[Requeued]:
    """Queue again the open targets of every overdue entry this process claims."""
    now = time.time() if now is None else now
    done: list[Requeued] = []
    for raw in client.zrangebyscore(OPEN, "-inf", now, start=0, num=limit):
        member = raw.decode() if isinstance(raw, bytes) else raw
        if not claim_overdue(client, OPEN, member, now, grace_s):
            continue  # another reconciler has it
        message_id, channel = member.rsplit("|", 1)
        led = Ledger(client, message_id, channel)
        pending = open_targets(led)
        if not pending:
            client.zrem(OPEN, member)
            continue
        for start in range(0, len(pending), BATCH):
            requeue(channel, message_id, pending[start : start + BATCH])
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(REQUEUED + message_id, channel, len(pending))
        pipe.expire(REQUEUED + message_id, KEY_TTL_S)
        pipe.execute()
        done.append(Requeued(message_id, channel, len(pending)))
    return done
