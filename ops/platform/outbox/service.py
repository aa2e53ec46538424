"""Outbox writes and the relay to Celery: a task is a row first, published after the commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import kombu.exceptions
import redis
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.outbox.models import OutboxMessage

log = logging.getLogger(__name__)

# Broker failures the relay expects and survives: the row stays unpublished and is retried.
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, OSError)


def enqueue(session: Session, task: str, args: list[Any]) -> OutboxMessage:
    """Write an outbox row in the caller's transaction; the relay publishes it after commit.

    The task receives the outbox row id first, then `args`.
    """
    row = OutboxMessage(task=task, args=args)
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class RelayResult:
    published: int
    pending: int
    error: str | None = None


def relay_pending(send: Callable[..., Any], limit: int = 200) -> RelayResult:
    """Publish unpublished outbox rows in order, and again those published long ago but never
    completed; stop at the first broker failure."""
    settings = get_settings()
    published = 0
    error = None
    stale = utcnow() - timedelta(seconds=settings.outbox_redeliver_seconds)
    with session_scope() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(
                or_(
                    OutboxMessage.published_at.is_(None),
                    # Never abandoned: a row whose work never completed is published again
                    # every outbox_redeliver_seconds for as long as it takes.
                    and_(
                        OutboxMessage.completed_at.is_(None),
                        OutboxMessage.published_at < stale,
                    ),
                )
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            row.attempts += 1
            try:
                # task_id from the row: a re-publish after a crash is recognisably the same task.
                send(row.task, args=[row.id, *row.args], task_id=f"outbox-{row.id}")
            except BROKER_ERRORS as exc:
                error = f"{type(exc).__name__}: broker unavailable"
                row.last_error = error
                log.warning("outbox relay paused: %s (row %s stays pending)", error, row.id)
                break
            row.published_at = utcnow()
            row.last_error = None
            published += 1
        pending = len(rows) - published
    return RelayResult(published=published, pending=pending, error=error)


def complete(session: Session, outbox_id: int) -> None:
    """Mark an outbox row's work done so the relay never publishes it again."""
    row = session.get(OutboxMessage, outbox_id)
    if row is not None and row.completed_at is None:
        row.completed_at = utcnow()
