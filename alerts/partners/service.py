"""Partner accounts and API keys: shown once, stored hashed, scoped, expiring, rotatable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.partners.models import Partner, PartnerKey
from channels import base, webhook
from ops.platform.audit import service as audit
from ops.platform.clock import utcnow


class Scope(StrEnum):
    DEVICES_WRITE = "devices:write"
    FEEDS_READ = "feeds:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    TIPS_WRITE = "tips:write"
    REACH_WRITE = "reach:write"


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


def key_still_valid(session: Session, prefix: str, now: datetime | None = None) -> bool:
    """Whether a key authenticated earlier still works: not revoked or expired since, and its
    partner not suspended (long-lived streams re-check this every few seconds)."""
    row = session.get(PartnerKey, prefix)
    if row is None or row.revoked_at is not None:
        return False
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return False
    partner = session.get(Partner, row.partner_id)
    return partner is not None and partner.active


class Format(StrEnum):
    CAP = "cap"
    ATOM = "atom"
    JSON = "json"
    STREAM = "stream"
    WEBHOOK = "webhook"


class RateLimited(Exception):
    """The partner used up its requests for this minute."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limit reached; retry after {retry_after} s")


def revoke_key(session: Session, partner: Partner, prefix: str, *, actor: str) -> None:
    """Revoke a key at once."""
    row = session.get(PartnerKey, prefix)
    if row is None or row.partner_id != partner.id:
        raise PartnerError(f"prefix: no key {prefix} for this partner")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action="partner.key_revoked",
            subject=f"partner:{partner.id}",
            detail={"prefix": prefix},
        )


def set_active(session: Session, partner: Partner, active: bool, *, actor: str) -> None:
    """Suspend or restore a partner: a suspended one gets nothing and its keys stop working."""
    if partner.active != active:
        partner.active = active
        audit.record(
            session,
            actor=actor,
            action="partner.activated" if active else "partner.suspended",
            subject=f"partner:{partner.id}",
        )


def keys_of(session: Session, partner_id: int) -> list[PartnerKey]:
    """A partner's keys, newest first (hashes never leave this module)."""
    return list(
        session.scalars(
            select(PartnerKey)
            .where(PartnerKey.partner_id == partner_id)
            .order_by(PartnerKey.created_at.desc())
        )
    )


def set_profile(
    session: Session,
    partner: Partner,
    *,
    actor: str,
    area: list[list[list[float]]] | None,
    languages: list[str],
    formats: list[str],
    rate_limit_per_minute: int,
    drills: bool = False,
) -> Partner:
    """Set the partner's area of interest (None: whole country), languages, formats and limit."""
    if area is not None:
        for i, ring in enumerate(area):
            polygon = _polygon(ring)
            if not polygon.is_valid:
                raise PartnerError(f"area.{i}: polygon intersects itself")
    partner.area = area
    partner.languages = list(languages)
    partner.formats = list(formats)
    partner.rate_limit_per_minute = rate_limit_per_minute
    partner.drills = drills
    audit.record(
        session,
        actor=actor,
        action="partner.profile_set",
        subject=f"partner:{partner.id}",
        detail={
            "polygons": len(area) if area else 0,
            "languages": list(languages),
            "formats": list(formats),
            "rate_limit_per_minute": rate_limit_per_minute,
            "drills": drills,
        },
    )
    return partner


def _polygon(ring: list[list[float]]):
    from shapely.geometry import Polygon

    # (lat, lon) in, (x=lon, y=lat) for shapely.
    return Polygon([(lon, lat) for lat, lon in ring])


def _area_geometry(area: dict | None):
    published = base.Area.from_json(area)
    if published is None or not published.polygon:
        return None
    return _polygon(published.polygon)


def receives(partner: Partner, area: dict | None) -> bool:
    """True when an alert with this area (a message's area JSON) intersects the partner's area."""
    if not partner.active:
        return False
    if partner.area is None:
        return True
    geometry = _area_geometry(area)
    if geometry is None:
        return True  # no area known: a closing notice of a case the partner could have had
    return any(_polygon(ring).intersects(geometry) for ring in partner.area)


def takes_format(partner: Partner, fmt: Format) -> bool:
    """True when the partner asked for this format (no list means every format)."""
    return not partner.formats or fmt.value in partner.formats


def hit_rate_limit(client, partner: Partner, now: float) -> None:
    """Count one API request against the partner's per-minute limit; raises RateLimited."""
    window = int(now // 60)
    key = f"ratelimit:partner:{partner.id}:{window}"
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = pipe.execute()[0]
    if count > partner.rate_limit_per_minute:
        raise RateLimited(max(1, 60 - int(now % 60)))


class UnsafeUrl(PartnerError, webhook.UnsafeUrl):
    """A webhook URL that points somewhere the server must not call (SSRF)."""


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """The webhook channel's SSRF check, raising the partner API's error (names the field)."""
    try:
        webhook.check_url(url, allow_private=allow_private)
    except webhook.UnsafeUrl as exc:
        raise UnsafeUrl(str(exc)) from None
