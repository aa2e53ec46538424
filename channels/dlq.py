"""The dead-letter store: targets that still failed at the retry horizon, and their replay."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels import service
from channels.ledger import Ledger, State, Target
from channels.models import DeadLetter
from ops.platform.clock import utcnow
from ops.platform.redis_client import get_redis


def list_letters(session: Session, *, include_replayed: bool = False, limit: int = 100):
    """Dead letters, newest first."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if not include_replayed:
        query = query.where(DeadLetter.replayed_at.is_(None))
    return list(session.scalars(query))


def replay(session: Session, letter_id: int) -> int:
    """Re-enqueue a dead letter's targets with a fresh retry horizon; returns the target count."""
    letter = session.get(DeadLetter, letter_id)
    if letter is None:
        raise LookupError(f"dead letter {letter_id} not found")
    if letter.replayed_at is not None:
        return 0
    targets = [Target(t, p) for t, p in letter.targets]
    letter.replayed_at = utcnow()
    session.commit()  # the replay is recorded before its tasks can run
    led = Ledger(get_redis(), letter.message_id, letter.channel)
    led.move(targets, State.RETRYING, "retrying", reopen="dead_lettered")
    now = time.time()
    if letter.channel == "webhook":
        for t in targets:
            service.enqueue("webhook", letter.message_id, [t.id], 0, now)
    else:
        service.enqueue(letter.channel, letter.message_id, [t.id for t in targets], 0, now)
    return len(targets)
