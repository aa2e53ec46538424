"""Pacing shared by every worker, in Redis: token buckets, concurrency budgets, breakers.

Each primitive is one Lua script, so a check-and-take is atomic across workers and machines.
Time comes from Redis (TIME), so workers with skewed clocks still share one bucket.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

import redis

# KEYS[1] bucket hash; ARGV rate/s, burst, wanted. Returns {granted, wait_ms}.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(s[1]) or burst
local ts = tonumber(s[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
-- tokens go below zero while the bucket is held (hold): nothing is granted then
local granted = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 60000)
local wait = 0
if granted < want then
  wait = math.ceil((math.min(want - granted, burst) - tokens) / rate * 1000)
end
return {granted, wait}
"""

# KEYS[1] bucket hash; ARGV rate/s, burst, hold seconds. Empties the bucket and owes `hold`
# seconds of tokens, so every worker waits that long (never shortens a longer hold).
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(s[1]) or burst
local ts = tonumber(s[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
tokens = math.min(tokens, -hold * rate)
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + hold) * 1000) + 60000)
return 1
"""

# KEYS[1] lease zset; ARGV holder, limit, lease_s. Returns 1 if a slot was taken.
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 60)
return 1
"""

# KEYS[1] breaker hash; ARGV open_s. Returns {allowed, state, wait_ms}.
_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local s = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probe_until')
local state = s[1] or 'closed'
if state == 'closed' then return {1, state, 0} end
local open_s = tonumber(ARGV[1])
local opened = tonumber(s[2]) or 0
if state == 'open' and now < opened + open_s then
  return {0, state, math.ceil((opened + open_s - now) * 1000)}
end
-- half-open: one probe at a time; a probe that never reports back expires after open_s
local probe_until = tonumber(s[3]) or 0
if state == 'half_open' and now < probe_until then
  return {0, state, math.ceil((probe_until - now) * 1000)}
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + open_s)
return {1, 'half_open', 0}
"""

# KEYS[1] breaker hash; ARGV ok(1/0), threshold, timed out(1/0), timeout threshold.
# Returns the new state.
_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'timeouts', 0)
  return 'closed'
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local timeouts = 0
if ARGV[3] == '1' then timeouts = redis.call('HINCRBY', KEYS[1], 'timeouts', 1) end
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or failures >= tonumber(ARGV[2])
    or timeouts >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now)
  state = 'open'
end
redis.call('EXPIRE', KEYS[1], 86400)
return state
"""


class TokenBucket:
    """A token bucket shared across workers: `rate` tokens per second, at most `burst` saved."""

    def __init__(self, client: redis.Redis, name: str, rate: float, burst: float | None = None):
        self.key = f"ch:bucket:{name}"
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._script = client.register_script(_BUCKET)
        self._hold = client.register_script(_HOLD)

    def try_take(self, n: int = 1) -> tuple[int, float]:
        """Take up to n tokens now; (granted, seconds until the rest could be had)."""
        granted, wait_ms = self._script(keys=[self.key], args=[self.rate, self.burst, n])
        return int(granted), int(wait_ms) / 1000.0

    def hold(self, seconds: float) -> None:
        """Give no token to anyone for `seconds` (the provider said we were too fast)."""
        self._hold(keys=[self.key], args=[self.rate, self.burst, seconds])


class BucketPacer:
    """One token per provider request, waited for without blocking the event loop.

    The SMPP channel takes one per submit_sm, so the carrier's cap, which counts PDUs, is what
    the bucket counts: a two-part Chinese alert costs two. Burst 1 spaces the parts evenly, as
    a carrier that counts per second wants, instead of letting `rate` of them out at once.
    """

    def __init__(self, bucket: TokenBucket, sleep=asyncio.sleep) -> None:
        self.bucket = bucket
        self._sleep = sleep

    async def take(self) -> None:
        """Wait for one token."""
        while True:
            granted, wait = self.bucket.try_take(1)
            if granted:
                return
            await self._sleep(max(wait, 0.001))

    def hold(self, seconds: float) -> None:
        """Every worker sharing the bucket waits `seconds` before its next request."""
        self.bucket.hold(seconds)


class Budget:
    """At most `limit` concurrent holders (leases expire, so a killed worker frees its slot)."""

    def __init__(self, client: redis.Redis, name: str, limit: int, lease_s: float):
        self.key = f"ch:budget:{name}"
        self.limit = limit
        self.lease_s = lease_s
        self._client = client
        self._script = client.register_script(_LEASE)

    def acquire(self) -> str | None:
        """A lease id if a slot is free now, else None (the caller reschedules itself)."""
        holder = uuid.uuid4().hex
        ok = self._script(keys=[self.key], args=[holder, self.limit, self.lease_s])
        return holder if int(ok) else None

    def release(self, holder: str) -> None:
        """Give the slot back."""
        self._client.zrem(self.key, holder)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Permit:
    allowed: bool
    state: BreakerState
    wait_s: float


class Breaker:
    """Circuit breaker per endpoint: closed -> open after N failures -> half-open probe.

    Timeouts open it sooner (`timeout_threshold` consecutive ones): a hanging endpoint costs a
    slot for the whole timeout per request, so waiting for N of them holds slots for N
    timeouts. Any answer closes it and resets both counts.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        threshold: int,
        open_s: float,
        timeout_threshold: int | None = None,
    ):
        self.key = f"ch:breaker:{name}"
        self.threshold = threshold
        self.timeout_threshold = timeout_threshold or threshold
        self.open_s = open_s
        self._client = client
        self._allow = client.register_script(_ALLOW)
        self._record = client.register_script(_RECORD)

    def allow(self) -> Permit:
        """May we call the endpoint now? When not, how long until we may probe."""
        allowed, state, wait_ms = self._allow(keys=[self.key], args=[self.open_s])
        return Permit(bool(int(allowed)), BreakerState(_s(state)), int(wait_ms) / 1000.0)

    def record(self, ok: bool, *, timed_out: bool = False) -> BreakerState:
        """Report an answer (ok) or an endpoint failure (5xx, timeout, connection error)."""
        args = ["1" if ok else "0", self.threshold, "1" if timed_out else "0"]
        state = self._record(keys=[self.key], args=[*args, self.timeout_threshold])
        return BreakerState(_s(state))

    def state(self) -> BreakerState:
        """The current state, for operators and tests."""
        raw = self._client.hget(self.key, "state")
        return BreakerState(_s(raw)) if raw else BreakerState.CLOSED


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def take_blocking(bucket: TokenBucket, n: int, sleep=time.sleep) -> None:
    """Take n tokens, sleeping between tries (for high-rate providers paced in chunks)."""
    while n > 0:
        granted, wait = bucket.try_take(n)
        n -= granted
        if n > 0:
            sleep(max(wait, 0.001))
