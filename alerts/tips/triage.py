"""Tip triage states and the moves between them. Pure: no I/O, tested without a database.

A tip arrives `new`. The officer marks it `seen` (read, nothing yet), `credible` (worth
acting on) or `dismissed` (with a reason, which is personal data of whoever it names and is
erased with the case). A dismissed tip can be reopened as `seen`; a credible one can go back
to `seen`. A tip promoted to a sighting is final: the sighting (or the change waiting for a
second supervisor) now carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class TipState(StrEnum):
    NEW = "new"
    SEEN = "seen"
    CREDIBLE = "credible"
    DISMISSED = "dismissed"


ALLOWED: dict[TipState, frozenset[TipState]] = {
    TipState.NEW: frozenset({TipState.SEEN, TipState.CREDIBLE, TipState.DISMISSED}),
    TipState.SEEN: frozenset({TipState.CREDIBLE, TipState.DISMISSED}),
    TipState.CREDIBLE: frozenset({TipState.SEEN, TipState.DISMISSED}),
    TipState.DISMISSED: frozenset({TipState.SEEN}),
}


class TriageRefused(ValueError):
    """A move the rules do not allow; `field` names what to fix (state or reason)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class TipTriaged:
    tip_id: int
    from_state: TipState
    to_state: TipState
    actor_id: int
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class TipPromoted:
    tip_id: int
    actor_id: int
    at: datetime
    held: bool  # True: beyond the live-change distance, waiting for a second supervisor


def triage(
    tip_id: int,
    current: TipState,
    target: TipState,
    *,
    actor_id: int,
    at: datetime,
    reason: str | None,
    promoted: bool,
) -> TipTriaged:
    """Check one triage move and return its event; raises TriageRefused."""
    if promoted:
        raise TriageRefused("state", "the tip was promoted to a sighting; its triage is final")
    if target not in ALLOWED[current]:
        raise TriageRefused("state", f"a {current} tip cannot become {target}")
    reason = (reason or "").strip() or None
    if target is TipState.DISMISSED and reason is None:
        raise TriageRefused("reason", "dismissing a tip needs a reason")
    return TipTriaged(tip_id, current, target, actor_id, at, reason)


def promotable(state: TipState, has_location: bool, promoted: bool) -> str | None:
    """Why a tip cannot be promoted to a sighting, or None when it can."""
    if promoted:
        return "the tip was promoted already"
    if state is not TipState.CREDIBLE:
        return "only a credible tip can be promoted; mark it credible first"
    if not has_location:
        return "the tip has no location"
    return None
