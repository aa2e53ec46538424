"""Tip test helpers: a live case with a sent message, and tips sent the partners' way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.factories import make_partner, partner_headers
from tests.integration.partners.support import approved_case, start_first_wave

MARKER = "grey-coat-marker-7731"  # the tip text the privacy checks search for
CALLBACK = "+86 138 0013 8000"


def live_case(world: dict) -> tuple[str, str]:
    """An approved case whose first wave went out; returns (case id, message id)."""
    case_id = approved_case(world)
    return case_id, start_first_wave(case_id)


def tipper(name: str = "MapsApp", scopes: tuple[str, ...] = ("tips:write",)) -> dict[str, str]:
    """A partner allowed to send tips; returns its Authorization header."""
    return partner_headers(make_partner(name, scopes))


def tip_body(message_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message_id,
        "text": f"Girl in a red jacket with a woman in a grey coat {MARKER}",
        "seen_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat(),
        "location": {"lat": 23.14, "lon": 113.27, "accuracy_m": 30},
        "callback": CALLBACK,
    }
    body.update(overrides)
    return body


def send(api, headers: dict, message_id: str, **overrides: Any):
    return api.post("/api/v1/partner/tips", json=tip_body(message_id, **overrides), headers=headers)
