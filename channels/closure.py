"""A closed case's alerts stop at once: one Redis mark per case, read once per send chunk.

When a case is resolved, cancelled or expires, the closing code marks the case right after its
transaction commits (`close_case`). Every delivery unit reads the mark before it starts, and a
batch reads it again every `fanout.GATE_EVERY` sends, so after the mark a worker process starts
at most one such chunk more, besides the sends already on the wire (at most the channel's
concurrency). Targets held back end in the ledger as `withdrawn`, never silently dropped. The
case's closing notices (resolved, cancelled) are never held back: people must hear them next.
"""

from __future__ import annotations

import redis

from channels.messages import MessageId

KEY_TTL_S = 8 * 24 * 3600  # as the ledger's keys: longer than any retry horizon


def _key(case_id: str) -> str:
    return f"ch:closed:{case_id}"


def close_case(client: redis.Redis, case_id: str) -> None:
    """Stop every alert and update of the case that has not left yet (idempotent)."""
    client.set(_key(case_id), 1, ex=KEY_TTL_S)


def withheld(client: redis.Redis, message_id: str) -> bool:
    """True when this message must not be sent: its case closed and it is not a closing notice."""
    mid = MessageId.parse(message_id)
    return not mid.kind.closes and bool(client.exists(_key(mid.case_id)))
