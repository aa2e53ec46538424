"""The case lifecycle as a pure state machine; every transition yields a past-tense event.

draft -> submitted -> active -> resolved | cancelled | expired, with a rejection sending a
submitted case back to draft. No I/O here: the service persists what this module decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CaseState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACTIVE = "active"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Action(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    RESOLVE = "resolve"
    CANCEL = "cancel"
    EXPIRE = "expire"


CLOSED_STATES = frozenset({CaseState.RESOLVED, CaseState.CANCELLED, CaseState.EXPIRED})

TRANSITIONS: dict[tuple[CaseState, Action], CaseState] = {
    (CaseState.DRAFT, Action.SUBMIT): CaseState.SUBMITTED,
    (CaseState.SUBMITTED, Action.APPROVE): CaseState.ACTIVE,
    (CaseState.SUBMITTED, Action.REJECT): CaseState.DRAFT,
    (CaseState.ACTIVE, Action.RESOLVE): CaseState.RESOLVED,
    (CaseState.DRAFT, Action.CANCEL): CaseState.CANCELLED,
    (CaseState.SUBMITTED, Action.CANCEL): CaseState.CANCELLED,
    (CaseState.ACTIVE, Action.CANCEL): CaseState.CANCELLED,
    (CaseState.ACTIVE, Action.EXPIRE): CaseState.EXPIRED,
}

REASON_REQUIRED = frozenset({Action.REJECT, Action.CANCEL})


@dataclass(frozen=True)
class CaseEvent:
    case_id: str
    actor_id: int | None
    at: datetime
    from_state: CaseState
    to_state: CaseState
    reason: str | None = None


@dataclass(frozen=True)
class CaseSubmitted(CaseEvent):
    pass


@dataclass(frozen=True)
class CaseApproved(CaseEvent):
    self_approved: bool = False


@dataclass(frozen=True)
class CaseRejected(CaseEvent):
    pass


@dataclass(frozen=True)
class CaseResolved(CaseEvent):
    pass


@dataclass(frozen=True)
class CaseCancelled(CaseEvent):
    pass


@dataclass(frozen=True)
class CaseExpired(CaseEvent):
    pass


@dataclass(frozen=True)
class CaseUpdated(CaseEvent):
    """An active case's public details changed (no state change)."""


EVENTS: dict[Action, type[CaseEvent]] = {
    Action.SUBMIT: CaseSubmitted,
    Action.APPROVE: CaseApproved,
    Action.REJECT: CaseRejected,
    Action.RESOLVE: CaseResolved,
    Action.CANCEL: CaseCancelled,
    Action.EXPIRE: CaseExpired,
}


class IllegalTransition(Exception):
    """The action is not allowed from the case's current state."""

    def __init__(self, state: CaseState, action: Action) -> None:
        self.state = state
        self.action = action
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else "; the case is closed"
        super().__init__(f"cannot {action.value} a case that is {state.value}{hint}")


class ReasonRequired(ValueError):
    """Rejecting or cancelling needs a reason for the audit log and the officer."""

    def __init__(self, action: Action) -> None:
        self.action = action
        super().__init__(f"reason: a reason is required to {action.value} a case")


def transition(
    state: CaseState,
    action: Action,
    *,
    case_id: str,
    actor_id: int | None,
    at: datetime,
    reason: str | None = None,
    self_approved: bool = False,
) -> CaseEvent:
    """Decide the next state for an action, or raise IllegalTransition."""
    target = TRANSITIONS.get((state, action))
    if target is None:
        raise IllegalTransition(state, action)
    if action in REASON_REQUIRED and not (reason and reason.strip()):
        raise ReasonRequired(action)
    if action is Action.APPROVE:
        return CaseApproved(case_id, actor_id, at, state, target, reason, self_approved)
    return EVENTS[action](case_id, actor_id, at, state, target, reason)


def is_expired(approved_at: datetime, now: datetime, lifetime_hours: int) -> bool:
    """True when an active alert has outlived its configured lifetime."""
    return (now - approved_at).total_seconds() >= lifetime_hours * 3600
