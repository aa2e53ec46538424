"""Run a case event's handlers once per outbox row; the handler table is wired in bootstrap.

The outbox row carries `[case_id, kind]` (kind: approved, updated, resolved, cancelled,
expired), the wire format queued work keeps across a deploy. The kind names an event class,
and `alerts.bootstrap` maps each event class to the flow functions that handle it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.cases import lifecycle
from alerts.dispatch.models import DispatchRun
from ops.platform.clock import utcnow
from ops.platform.outbox import service as outbox
from ops.platform.outbox.models import OutboxMessage

DISPATCH_TASK = "reunite.dispatch.case"

# The outbox's kind strings and the event classes they stand for.
KINDS: dict[str, type[lifecycle.CaseEvent]] = {
    "approved": lifecycle.CaseApproved,
    "updated": lifecycle.CaseUpdated,
    "resolved": lifecycle.CaseResolved,
    "cancelled": lifecycle.CaseCancelled,
    "expired": lifecycle.CaseExpired,
}

Handler = Callable[[Session, str, int], None]
"""A flow step: (session, case id, outbox row id); it re-reads the case itself."""

# Filled by alerts.bootstrap.wire(): event class -> handlers, in order.
handlers: dict[type[lifecycle.CaseEvent], list[Handler]] = {}


def enqueue_dispatch(session: Session, case_id: str, kind: str) -> OutboxMessage:
    """Queue the dispatch of a case event (approved, updated, resolved, cancelled, expired)."""
    if kind not in KINDS:
        raise ValueError(f"unknown dispatch kind {kind!r}")
    return outbox.enqueue(session, DISPATCH_TASK, [case_id, kind])


def run_dispatch(session: Session, outbox_id: int, case_id: str, kind: str) -> bool:
    """Run the handlers for one outbox row once; False when it already ran (redelivery)."""
    outbox.complete(session, outbox_id)
    if session.get(DispatchRun, outbox_id) is not None:
        return False
    session.add(DispatchRun(outbox_id=outbox_id, case_id=case_id, kind=kind))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    for handler in handlers.get(KINDS[kind], []):
        handler(session, case_id, outbox_id)
    run = session.get(DispatchRun, outbox_id)
    assert run is not None
    run.finished_at = utcnow()
    return True
