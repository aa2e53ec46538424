"""Tips over a session: intake (partners and the public page), triage, promotion, erasure.

A tip is personal data of the tipster. Nothing here logs its text, location or callback
number; audit entries carry ids and the dismissal reason (erasable, like every reason), and
the callback number is stored Fernet-encrypted under its own key (HKDF of the secret key).
Promotion goes through the sighting path every sighting takes (alerts.dispatch.flows), so the
live-change rules hold: beyond REUNITE_LIVE_CHANGE_MAX_KM a second supervisor decides, and
the restarted waves never reach a device the case already alerted (geo.waves claims).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.cases import service as cases
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case, CaseChange
from alerts.console import photos
from alerts.dispatch import flows
from alerts.dispatch.schemas import SightingCreate
from alerts.feeds import photos as feed_photos
from alerts.tips import triage as rules
from alerts.tips.models import Tip
from alerts.tips.triage import TipState
from alerts.users.models import User
from alerts.users.roles import CASE_AUTHORS, Role
from channels.messages import MessageId
from channels.models import Message
from ops.platform import blobstore, crypto
from ops.platform.audit import service as audit
from ops.platform.clock import utcnow
from ops.platform.config import Settings

CALLBACK_PURPOSE = b"reunite tip callbacks v1"
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class TipRefused(ValueError):
    """A tip or triage request that cannot be carried out; names the field, and the HTTP
    status it maps to (422 a bad field, 409 the case's or tip's state, 413 a photo too big)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        self.field = field
        self.status = status
        super().__init__(message)


@lru_cache(maxsize=4)
def _fernet(secret: str):
    return crypto.fernet_for(secret, CALLBACK_PURPOSE)


def encrypt_callback(settings: Settings, number: str) -> bytes:
    """The callback number as stored (Fernet under its own derived key)."""
    return _fernet(settings.secret_key.get_secret_value()).encrypt(number.encode())


def callback_of(settings: Settings, tip: Tip) -> str | None:
    """The tipster's callback number in clear, for the case's police only."""
    if tip.callback_enc is None:
        return None
    return _fernet(settings.secret_key.get_secret_value()).decrypt(tip.callback_enc).decode()


def case_of_message(session: Session, message_id: str) -> Case:
    """The case of an alert message a partner received (message id or CAP identifier)."""
    text = message_id.removeprefix("reunite:")
    try:
        MessageId.parse(text)
    except ValueError:
        raise TipRefused(
            "message_id", "is not a message id (<case-id>:<kind>:<wave>:<n>) or CAP identifier"
        ) from None
    message = session.get(Message, text)
    case = session.get(Case, message.case_id) if message is not None else None
    if case is None:
        raise TipRefused("message_id", "no alert with this message id", 404)
    return case


def check_open(case: Case) -> None:
    """Refuse tips for a case that is not live (closed, or never approved)."""
    if case.state != CaseState.ACTIVE.value:
        shown = case.state if case.approved_at else "not public"
        raise TipRefused(
            "case",
            f"this alert is {shown}; tips are taken only while it is active "
            "(call the tip line instead)",
            409,
        )


def _store_photo(settings: Settings, data: bytes) -> tuple[str, str]:
    if len(data) > settings.photo_max_bytes:
        mb = settings.photo_max_bytes // (1024 * 1024)
        raise TipRefused("photo", f"is larger than {mb} MB", 413)
    if not data:
        raise TipRefused("photo", "is empty")
    try:
        body, thumb, content_type, _size = photos.sanitise(data, settings.photo_max_pixels)
    except photos.PhotoRejected as exc:
        raise TipRefused("photo", str(exc)) from None
    ref = "tp_" + secrets.token_urlsafe(24)
    store = blobstore.store_for(settings)
    store.put(f"{ref}.thumb.jpg", thumb, "image/jpeg")
    store.put(f"{ref}.{EXTENSIONS[content_type]}", body, content_type)
    return ref, content_type


@dataclass(frozen=True)
class TipInput:
    text: str
    seen_at: datetime | None
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    photo: bytes | None = None
    callback: str | None = None


def receive(
    session: Session,
    case: Case,
    tip: TipInput,
    settings: Settings,
    *,
    source: str,
    partner_id: int | None = None,
    message_id: str | None = None,
) -> Tip:
    """Store a tip for the case's police (photo sanitised, callback encrypted); audited."""
    check_open(case)
    if tip.seen_at is not None and tip.seen_at > utcnow():
        raise TipRefused("seen_at", "must not be in the future")
    ref = content_type = None
    if tip.photo is not None:
        ref, content_type = _store_photo(settings, tip.photo)
    row = Tip(
        case_id=case.id,
        source=source,
        partner_id=partner_id,
        message_id=message_id,
        text=tip.text,
        photo_ref=ref,
        photo_content_type=content_type,
        lat=tip.lat,
        lon=tip.lon,
        accuracy_m=tip.accuracy_m,
        seen_at=tip.seen_at,
        callback_enc=encrypt_callback(settings, tip.callback) if tip.callback else None,
        state=TipState.NEW.value,
        received_at=utcnow(),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=f"partner:{partner_id}" if partner_id else "public",
        action="tip.received",
        subject=f"case:{case.id}",
        detail={"tip": row.id, "source": source, "photo": ref is not None},
    )
    return row


def tips_of(session: Session, case_id: str) -> list[Tip]:
    """A case's tips, newest first."""
    return list(
        session.scalars(
            select(Tip)
            .where(Tip.case_id == case_id)
            .order_by(Tip.received_at.desc(), Tip.id.desc())
        )
    )


def poll_token(session: Session, case_id: str) -> tuple[str, int]:
    """What changes whenever a tip arrives or is triaged, and how many are new."""
    count, newest, versions = session.execute(
        select(func.count(Tip.id), func.max(Tip.id), func.sum(Tip.version)).where(
            Tip.case_id == case_id
        )
    ).one()
    new = session.scalar(
        select(func.count(Tip.id)).where(Tip.case_id == case_id, Tip.state == TipState.NEW.value)
    )
    return f"{count}.{newest or 0}.{versions or 0}", int(new or 0)


def _tip(session: Session, case: Case, tip_id: int, *, lock: bool = True) -> Tip:
    query = select(Tip).where(Tip.id == tip_id, Tip.case_id == case.id)
    if lock:
        query = query.with_for_update()
    tip = session.scalars(query).one_or_none()
    if tip is None or tip.erased_at is not None:
        raise cases.CaseNotFound(f"tip {tip_id} not found")
    return tip


def _police(user: User) -> None:
    if Role(user.role) not in CASE_AUTHORS:
        raise cases.Forbidden(f"role {user.role} cannot triage tips")


def triage(
    session: Session,
    case_id: str,
    tip_id: int,
    target: TipState,
    user: User,
    reason: str | None = None,
) -> Tip:
    """Move a tip to seen, credible or dismissed (with a reason); audited on the case."""
    _police(user)
    case = cases.get(session, case_id, user)
    tip = _tip(session, case, tip_id)
    try:
        event = rules.triage(
            tip.id,
            TipState(tip.state),
            target,
            actor_id=user.id,
            at=utcnow(),
            reason=(reason or "")[:1000],
            promoted=tip.promoted_at is not None,
        )
    except rules.TriageRefused as exc:
        status = 422 if exc.field == "reason" else 409
        raise TipRefused(exc.field, str(exc).split(": ", 1)[-1], status) from None
    tip.state = event.to_state.value
    tip.dismiss_reason = event.reason if event.to_state is TipState.DISMISSED else None
    tip.triaged_by_id, tip.triaged_at = user.id, event.at
    tip.version += 1
    audit.record(
        session,
        actor=f"user:{user.id}",
        action=f"tip.{event.to_state.value}",
        subject=f"case:{case.id}",
        reason=event.reason,
        detail={"tip": tip.id, "from": event.from_state.value},
    )
    return tip


def promote(session: Session, case_id: str, tip_id: int, user: User) -> Tip:
    """Make a credible tip with a location the case's new sighting, in one step.

    The sighting rules apply as they do to any sighting: not earlier than the last one, and
    beyond REUNITE_LIVE_CHANGE_MAX_KM it is held for a second supervisor (the tip then points
    at the pending change). Otherwise the waves restart from the tip's place at once; devices
    already alerted are not alerted again (they get the update notice)."""
    _police(user)
    case = cases.get(session, case_id, user)
    tip = _tip(session, case, tip_id)
    located = tip.lat is not None and tip.lon is not None
    why = rules.promotable(TipState(tip.state), located, tip.promoted_at is not None)
    if why is not None:
        raise TipRefused("tip", why, 409)
    check_open(case)
    at = tip.seen_at or tip.received_at
    try:
        flows.check_sighting(case, at)
    except flows.SightingRefused as exc:
        raise TipRefused("seen_at", str(exc), 409) from None
    assert tip.lat is not None and tip.lon is not None
    note = f"Promoted from tip {tip.id}" + (
        f" (position within {tip.accuracy_m:.0f} m)" if tip.accuracy_m else ""
    )
    held = flows.moves_too_far(case, tip.lat, tip.lon)
    if held:
        body = SightingCreate(at=at, lat=tip.lat, lon=tip.lon, address=None, note=note)
        change = cases.propose(
            session, case, cases.ChangeKind.SIGHTING, body.model_dump(mode="json"), user
        )
        tip.change_id = change.id
    else:
        try:
            sighting = flows.add_sighting(
                session,
                case.id,
                at=at,
                lat=tip.lat,
                lon=tip.lon,
                address=None,
                note=note,
                user_id=user.id,
            )
        except (flows.WaveConflict, flows.SightingRefused) as exc:
            raise TipRefused("tip", str(exc), 409) from None
        tip.sighting_id = sighting.id
    now = utcnow()
    tip.promoted_at, tip.promoted_by_id = now, user.id
    tip.version += 1
    event = rules.TipPromoted(tip.id, user.id, now, held)
    audit.record(
        session,
        actor=f"user:{user.id}",
        action="tip.promoted",
        subject=f"case:{case.id}",
        detail={"tip": event.tip_id, "held": event.held, "change": tip.change_id},
    )
    return tip


def pending_change(session: Session, tip: Tip) -> CaseChange | None:
    """The change a promotion is waiting on, if it still is."""
    if tip.change_id is None:
        return None
    return session.get(CaseChange, tip.change_id)


def photo(settings: Settings, tip: Tip, *, thumb: bool) -> bytes | None:
    """A tip's sanitised photo or its thumbnail (for the case's police only)."""
    if tip.photo_ref is None or tip.photo_content_type is None:
        return None
    name = (
        f"{tip.photo_ref}.thumb.jpg"
        if thumb
        else f"{tip.photo_ref}.{EXTENSIONS[tip.photo_content_type]}"
    )
    return blobstore.store_for(settings).get(name)


def erase(session: Session, case_id: str, settings: Settings) -> int:
    """Clear every tip of an erased case (text, photo files, place, callback, reason); the
    rows keep ids, source, state and times. Returns how many photo files were deleted."""
    deleted = 0
    now = utcnow()
    for tip in session.scalars(select(Tip).where(Tip.case_id == case_id)):
        if tip.photo_ref:
            deleted += feed_photos.erase(settings, tip.photo_ref)
        tip.text = None
        tip.photo_ref = tip.photo_content_type = None
        tip.lat = tip.lon = tip.accuracy_m = None
        tip.callback_enc = None
        tip.dismiss_reason = None
        if tip.erased_at is None:
            tip.erased_at = now
    return deleted
