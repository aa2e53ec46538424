"""How a closed case ended: a fixed list, modelled on the published categories. Pure, no I/O.

The outcome, the time from loss to recovery and whether a tip contributed are not personal
data: erasure keeps them, so the outcome statistics (alerts.stats) survive it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class Outcome(StrEnum):
    FOUND_SAFE = "found_safe"
    RETURNED_HOME = "returned_home"
    FOUND_WITH_RELATIVE = "found_with_relative"
    RESCUED_FROM_ABDUCTION = "rescued_from_abduction"
    FOUND_DECEASED = "found_deceased"
    CANCELLED_UNFOUNDED = "cancelled_unfounded"
    OTHER = "other"
    # Never chosen by a person: an alert that expired by time, with nobody saying how it ended.
    UNKNOWN = "unknown"


# What resolving (the child was found) offers; the first is the console's preselection.
FOUND = (
    Outcome.FOUND_SAFE,
    Outcome.RETURNED_HOME,
    Outcome.FOUND_WITH_RELATIVE,
    Outcome.RESCUED_FROM_ABDUCTION,
    Outcome.FOUND_DECEASED,
    Outcome.OTHER,
)
# What cancelling offers.
CANCELLED = (Outcome.CANCELLED_UNFOUNDED, Outcome.OTHER)


def recovered(resolved: bool, outcome: str | None) -> bool:
    """Whether a closed case counts as a recovery: resolved (the child found) and not found
    deceased. A case resolved before outcomes were recorded (outcome null) counts."""
    return resolved and outcome != Outcome.FOUND_DECEASED.value


def lost_at(origin_at: datetime | None, last_seen_at: datetime) -> datetime:
    """When the child was lost: the first last-seen time (kept in origin_at once a sighting
    moves last_seen_at, else last_seen_at itself)."""
    return origin_at or last_seen_at


def recovery_seconds(lost: datetime, closed: datetime) -> int:
    """Seconds from loss to closure, never negative (a last-seen time can be a little ahead)."""
    return max(0, int((closed - lost).total_seconds()))
