"""Partner accounts and API keys: shown once, stored hashed, scoped, expiring, rotatable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.audit import service as audit
from alerts.db import utcnow
from alerts.partners.models import Partner, PartnerKey


class Scope(StrEnum):
    DEVICES_WRITE = "devices:write"
    FEEDS_READ = "feeds:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


class PartnerKind(StrEnum):
    APP = "app"
    CARRIER = "carrier"
    MEDIA = "media"


class PartnerError(ValueError):
    """A partner request that cannot be carried out (names the field)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_partner(session: Session, name: str, kind: PartnerKind, actor: str) -> Partner:
    """Create a partner account."""
    if session.scalar(select(Partner).where(Partner.name == name)) is not None:
        raise PartnerError(f"name: partner {name!r} exists already")
    partner = Partner(name=name, kind=kind.value)
    session.add(partner)
    session.flush()
    audit.record(session, actor=actor, action="partner.created", subject=f"partner:{partner.id}")
    return partner


def issue_key(
    session: Session,
    partner: Partner,
    scopes: list[Scope],
    *,
    actor: str,
    ttl: timedelta | None = timedelta(days=365),
) -> str:
    """A new API key `rk_<prefix>_<secret>`; the full key is returned once and never stored."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        PartnerKey(
            prefix=prefix,
            partner_id=partner.id,
            secret_hash=_digest(secret),
            scopes=sorted(s.value for s in scopes),
            expires_at=utcnow() + ttl if ttl else None,
        )
    )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="partner.key_issued",
        subject=f"partner:{partner.id}",
        detail={"prefix": prefix, "scopes": sorted(s.value for s in scopes)},
    )
    return f"rk_{prefix}_{secret}"


def rotate_key(
    session: Session, partner: Partner, old_prefix: str, *, actor: str, overlap: timedelta
) -> str:
    """Issue a new key with the old one's scopes; the old key keeps working for `overlap`."""
    old = session.get(PartnerKey, old_prefix)
    if old is None or old.partner_id != partner.id:
        raise PartnerError(f"prefix: no key {old_prefix} for this partner")
    new = issue_key(session, partner, [Scope(s) for s in old.scopes], actor=actor)
    ends = utcnow() + overlap
    if old.expires_at is None or old.expires_at > ends:
        old.expires_at = ends
    return new


def authenticate(session: Session, key: str, now: datetime | None = None) -> PartnerKey | None:
    """The live key record for a presented API key, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "rk":
        return None
    row = session.get(PartnerKey, parts[1])
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return None
    if not hmac.compare_digest(row.secret_hash, _digest(parts[2])):
        return None
    partner = session.get(Partner, row.partner_id)
    return row if partner is not None and partner.active else None
