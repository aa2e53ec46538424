"""The one clock: timezone-aware UTC now, for rows, events and deadlines."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
