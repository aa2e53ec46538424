"""What an SMS provider did with each part: accepted (and under which id), then delivered.

A carrier paces and bills per part, and throttles per part: resending a whole message because
its second part was throttled sends the first one again (twice billed, shown twice, and the
handset may never see part 2). So the channel asks `accepted` before sending and skips the
parts that already went, and records each part as the provider accepts it (`accept`), keyed by
(message, target): a Celery retry of the unit, on any worker, sends only what is missing. The
UDH reference is derived from message and number, so the late parts join the early ones.

Receipts come back by provider id (the SMSC's submit_sm_resp message_id, the gateway's id),
so `accept` also maps each id to its (message, target, part). A receipt for every part makes
the target `delivered` in the ledger (`Ledger.deliver`), the one place that word is counted.
A receipt can beat the bookkeeping of its own submit (the SMSC answers, then receipts at
once): one for an id not yet mapped waits, and `accept` applies it.

Keys never hold a phone number: targets are named by the ledger's ids (device and partner),
or by a hash of the number when a caller has no ledger.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis

from channels import ledger
from channels.base import Recipient
from channels.ledger import KEY_TTL_S, Ledger, Target
from channels.messages import MessageId
from channels.models import Message
from ops.platform.db import session_scope

EARLY_TTL_S = 3600  # a receipt waits this long for its submit to be recorded
LEDGER_CHANNEL = "sms"


@dataclass(frozen=True, slots=True)
class Receipt:
    """A provider's word on one accepted part (or unsplit message)."""

    provider_id: str
    delivered: bool
    state: str  # provider's own word: DELIVRD, UNDELIV, EXPIRED, delivered, failed...


class PartStore(Protocol):
    """Per-part state of SMS sends; `RedisParts` in workers and the API, `MemoryParts` alone."""

    def accepted(self, message_id: str, recipient: Recipient) -> dict[int, str]:
        """Part number -> provider id (may be '') of the parts already accepted."""
        ...

    def accept(
        self, message_id: str, recipient: Recipient, seq: int, total: int, provider_id: str
    ) -> None:
        """Record one part the provider accepted, under the id it gave."""
        ...

    def receipt(self, receipt: Receipt) -> None:
        """Record a delivery receipt."""
        ...

    def flush(self) -> None:
        """Make receipts recorded so far visible beyond Redis (the ledger's snapshot)."""
        ...


def target_key(recipient: Recipient) -> str:
    """The target's name in keys: 'device.partner', or a hash of the number without a ledger."""
    if recipient.target_id is not None:
        return f"{recipient.target_id}.{recipient.partner_id}"
    return "n" + hashlib.sha256(recipient.address.encode()).hexdigest()[:24]


def _ledger_target(key: str) -> Target | None:
    if key.startswith("n"):
        return None
    device, partner = key.split(".", 1)
    return Target(int(device), int(partner))


@dataclass
class MemoryParts:
    """One process's memory: a channel used on its own still never resends an accepted part."""

    parts: dict[tuple[str, str], dict[int, str]] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, message_id: str, recipient: Recipient) -> dict[int, str]:
        """Part number -> provider id of the parts already accepted."""
        with self._lock:
            return dict(self.parts.get((message_id, target_key(recipient)), {}))

    def accept(
        self, message_id: str, recipient: Recipient, seq: int, total: int, provider_id: str
    ) -> None:
        """Record one accepted part."""
        with self._lock:
            self.parts.setdefault((message_id, target_key(recipient)), {})[seq] = provider_id

    def receipt(self, receipt: Receipt) -> None:
        """Keep the receipt (there is no ledger to count it in)."""
        with self._lock:
            self.receipts.append(receipt)

    def flush(self) -> None:
        """Nothing to write."""


# KEYS: parts hash, id key, early key, delivered set. ARGV: seq, id, mapping, total, ttl.
# Returns 1 when a receipt that came first now completes the target's delivery.
_ACCEPT = """
local seq, pid, ttl = ARGV[1], ARGV[2], tonumber(ARGV[5])
redis.call('HSET', KEYS[1], seq, pid)
redis.call('EXPIRE', KEYS[1], ttl)
if pid == '' then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)
local early = redis.call('GET', KEYS[3])
if not early then return 0 end
redis.call('DEL', KEYS[3])
if early ~= '1' then return 0 end
redis.call('SADD', KEYS[4], seq)
redis.call('EXPIRE', KEYS[4], ttl)
if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[4]) then return 1 end
return 0
"""

# KEYS: id key, early key. ARGV: delivered (1/0), delivered-set prefix, ttl, early ttl.
# Returns false for an unknown id (kept as early), else {mapping, complete (1/0)}.
# The delivered set is named by the mapping read here, so it cannot be a declared key; the
# provider's hash tag in the prefix puts it on the declared keys' Redis Cluster slot.
_RECEIPT = """
local m = redis.call('GET', KEYS[1])
if not m then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[4]))
  return false
end
if ARGV[1] ~= '1' then return {m, 0} end
local mid, tgt, seq, total = string.match(m, '^(.*)|([^|]*)|(%d+)|(%d+)$')
local key = ARGV[2] .. mid .. ':' .. tgt
redis.call('SADD', key, seq)
redis.call('EXPIRE', key, tonumber(ARGV[3]))
if redis.call('SCARD', key) >= tonumber(total) then return {m, 1} end
return {m, 0}
"""


class RedisParts:
    """Part state in Redis, shared by every worker and the API (callbacks)."""

    def __init__(
        self,
        client: redis.Redis,
        provider: str,
        *,
        persist: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.provider = provider  # "sms_smpp" or "sms_http": provider ids are theirs
        self._persist = persist
        self._accept = client.register_script(_ACCEPT)
        self._receipt = client.register_script(_RECEIPT)
        self._touched: set[str] = set()
        self._lock = threading.Lock()

    # The provider is the hash tag of every key here: a receipt names only the provider's id,
    # so its script must reach the (message, number) keys on the same Redis Cluster slot. SMS
    # runs at carrier pace (tens of parts a second per bind), well within one node.
    def _parts_key(self, message_id: str, target: str) -> str:
        return f"ch:sms:{{{self.provider}}}:parts:{message_id}:{target}"

    def _id_key(self, provider_id: str) -> str:
        return f"ch:sms:{{{self.provider}}}:id:{provider_id}"

    def _early_key(self, provider_id: str) -> str:
        return f"ch:sms:{{{self.provider}}}:early:{provider_id}"

    def _delivered_prefix(self) -> str:
        return f"ch:sms:{{{self.provider}}}:dl:"

    def accepted(self, message_id: str, recipient: Recipient) -> dict[int, str]:
        """Part number -> provider id of the parts already accepted, by any worker."""
        raw = self.client.hgetall(self._parts_key(message_id, target_key(recipient)))
        return {int(_s(k)): _s(v) for k, v in raw.items()}

    def accept(
        self, message_id: str, recipient: Recipient, seq: int, total: int, provider_id: str
    ) -> None:
        """Record one accepted part and map its provider id to (message, target, part)."""
        target = target_key(recipient)
        keys = [
            self._parts_key(message_id, target),
            self._id_key(provider_id),
            self._early_key(provider_id),
            f"{self._delivered_prefix()}{message_id}:{target}",
        ]
        mapping = f"{message_id}|{target}|{seq}|{total}"
        args = [seq, provider_id, mapping, total, KEY_TTL_S]
        if int(self._accept(keys=keys, args=args)):
            self._delivered(message_id, target)

    def receipt(self, receipt: Receipt) -> None:
        """Count the part delivered; once every part of a target is, the target is."""
        keys = [self._id_key(receipt.provider_id), self._early_key(receipt.provider_id)]
        args = [
            "1" if receipt.delivered else "0",
            self._delivered_prefix(),
            KEY_TTL_S,
            EARLY_TTL_S,
        ]
        found = self._receipt(keys=keys, args=args)
        if not found:
            return
        mapping, complete = _s(found[0]), int(found[1])
        if complete:
            message_id, target, _seq, _total = mapping.rsplit("|", 3)
            self._delivered(message_id, target)

    def _delivered(self, message_id: str, target: str) -> None:
        # Imported here: the CLI imports this module (through channels.runtime) before it points
        # prometheus_client at the shared metrics directory, and importing the client earlier
        # leaves every worker counting in memory only.
        from ops import metrics

        ledger_target = _ledger_target(target)
        if ledger_target is None:
            return
        led = Ledger(self.client, message_id, LEDGER_CHANNEL)
        new = led.deliver([ledger_target])
        metrics.record_delivered(LEDGER_CHANNEL, ledger_target.partner_id, new)
        if new:
            with self._lock:
                self._touched.add(message_id)

    def flush(self) -> None:
        """Snapshot the ledger of every message a receipt changed since the last flush."""
        with self._lock:
            touched, self._touched = self._touched, set()
        if self._persist is not None:
            for message_id in sorted(touched):
                self._persist(message_id)


def snapshot(client: redis.Redis) -> Callable[[str], None]:
    """Write a message's live counters to delivery_counts: `RedisParts(persist=...)`."""

    def persist(message_id: str) -> None:
        with session_scope() as session:
            # A receipt can outlive its message (the case was erased): nothing to snapshot.
            if session.get(Message, message_id) is not None:
                ledger.persist(session, client, message_id, MessageId.case_of(message_id))

    return persist


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
