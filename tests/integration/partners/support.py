"""Drive a case through the real services as the workers would, without a broker round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from alerts.cases import service as cases
from alerts.cases.schemas import CaseCreate
from alerts.dispatch import flows
from alerts.dispatch import service as dispatch
from alerts.feeds.models import CaseDrill
from alerts.users.models import User
from channels import service as channels
from channels.models import Message
from geo.waves import service as waves
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.outbox.models import OutboxMessage
from tests.factories import case_payload

CENTER = (23.1291, 113.2644)
# A box around Guangzhou, and one around Urumqi (far outside any wave of a Guangzhou case).
GUANGZHOU = [[22.5, 112.8], [22.5, 114.0], [23.8, 114.0], [23.8, 112.8], [22.5, 112.8]]
URUMQI = [[43.5, 87.0], [43.5, 88.0], [44.2, 88.0], [44.2, 87.0], [43.5, 87.0]]


def _last_outbox(session) -> int:
    return session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()))


def approved_case(world: dict, *, drill: bool = False, **overrides: Any) -> str:
    """A case created, submitted, approved and dispatched (waves planned)."""
    payload = case_payload(**overrides)
    payload["last_seen"]["lat"], payload["last_seen"]["lon"] = CENTER
    with session_scope() as s:
        officer, sup = s.get(User, world["officer"]), s.get(User, world["sup"])
        case = cases.create(s, CaseCreate.model_validate(payload), officer, get_settings())
        if drill:
            s.add(CaseDrill(case_id=case.id, marked_by_id=sup.id))
        cases.submit(s, case.id, officer)
        cases.approve(s, case.id, sup)
        dispatch.run_dispatch(s, _last_outbox(s), case.id, "approved")
        return case.id


def start_first_wave(case_id: str) -> str:
    """Start wave 0 as the start_wave task does; returns its message id (partners fanned out)."""
    with session_scope() as s:
        wave = waves.waves_of(s, case_id)[0]
        start = flows.begin_wave(s, wave.id)
        assert start is not None
    channels.fan_out_partners(start.message_id)
    with session_scope() as s:
        waves.finish_wave(s, wave.id)
    return start.message_id


def add_sighting(world: dict, case_id: str, lat: float, lon: float) -> str:
    """A sighting: returns the update message id (partners fanned out)."""
    with session_scope() as s:
        flows.add_sighting(
            s,
            case_id,
            at=datetime.now(UTC) - timedelta(minutes=1),
            lat=lat,
            lon=lon,
            address="West bus station",
            note="seen with a woman in a grey coat",
            user_id=world["officer"],
        )
    return _fan_out_newest(case_id, "update")


def close(world: dict, case_id: str, kind: str = "resolved", reason: str | None = None) -> str:
    """Resolve or cancel and run the closing dispatch; returns the closing message id."""
    with session_scope() as s:
        officer = s.get(User, world["officer"])
        if kind == "resolved":
            cases.resolve(s, case_id, officer, reason)
        else:
            cases.cancel(s, case_id, officer, reason or "duplicate report")
        dispatch.run_dispatch(s, _last_outbox(s), case_id, kind)
    return _fan_out_newest(case_id, kind)


def _fan_out_newest(case_id: str, kind: str) -> str:
    with session_scope() as s:
        message = s.scalars(
            select(Message)
            .where(Message.case_id == case_id, Message.kind == kind)
            .order_by(Message.created_at.desc())
        ).first()
        assert message is not None
        message_id = message.id
    channels.fan_out_partners(message_id)
    return message_id


def create_partner(api, admin_headers: dict, name: str, **profile: Any) -> dict:
    """Create a partner through the admin API; returns the response body (key included)."""
    body = {"name": name, "kind": "app", "scopes": ["feeds:read", "webhooks:manage"]} | profile
    res = api.post("/api/v1/partners", json=body, headers=admin_headers)
    assert res.status_code == 201, res.text
    return res.json()


def bearer(key: str) -> dict[str, str]:
    """Authorization header for a partner key."""
    return {"Authorization": f"Bearer {key}"}
