"""Device registry operations over a session: upsert, lookup for fan-out, deactivation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from geo.devices.models import Device
from geo.index import CHUNK_BITS, LocationIndex
from ops.platform import crypto, db
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.redis_client import get_redis


class Platform(StrEnum):
    APNS = "apns"
    FCM = "fcm"
    SMS = "sms"


@dataclass(frozen=True)
class DeviceAddress:
    """What a channel needs to reach one device. `address` is secret: never log it."""

    id: int
    partner_id: int
    platform: Platform
    address: str
    locale: str

    def __repr__(self) -> str:
        return f"DeviceAddress(id={self.id}, platform={self.platform.value})"


def routes(
    session: Session, device_ids: Sequence[int], *, test_only: bool = False
) -> list[tuple[int, str, int]]:
    """(id, platform, partner id) of the active, opted-in devices among the ids (only the test
    devices among them for a drill)."""
    out: list[tuple[int, str, int]] = []
    ids = list(device_ids)
    for chunk in db.in_chunks(session, ids):
        query = select(Device.id, Device.platform, Device.partner_id).where(
            db.in_values(session, Device.id, chunk),
            Device.active.is_(True),
            Device.opted_in.is_(True),
        )
        if test_only:
            query = query.where(Device.test_device.is_(True))
        rows = session.execute(query)
        out.extend((row.id, row.platform, row.partner_id) for row in rows)
    return out


def partners_of(session: Session, device_ids: Sequence[int]) -> dict[int, int]:
    """Device id -> partner id for any of the ids, active or not."""
    rows = session.execute(select(Device.id, Device.partner_id).where(Device.id.in_(device_ids)))
    return {row.id: row.partner_id for row in rows}


def addresses(session: Session, device_ids: Sequence[int]) -> list[DeviceAddress]:
    """Decrypted addresses of the active, opted-in devices among the ids."""
    out: list[DeviceAddress] = []
    ids = list(device_ids)
    for chunk in db.in_chunks(session, ids):
        rows = session.execute(
            select(
                Device.id, Device.partner_id, Device.platform, Device.address_enc, Device.locale
            ).where(
                db.in_values(session, Device.id, chunk),
                Device.active.is_(True),
                Device.opted_in.is_(True),
            )
        )
        out.extend(
            DeviceAddress(
                id=r.id,
                partner_id=r.partner_id,
                platform=Platform(r.platform),
                address=crypto.decrypt(r.address_enc),
                locale=r.locale,
            )
            for r in rows
        )
    return out


def deactivate(session: Session, device_ids: Iterable[int], reason: str) -> int:
    """Mark devices dead (a provider said the token or number no longer exists)."""
    ids = list(device_ids)
    if not ids:
        return 0
    result = session.execute(
        update(Device)
        .where(Device.id.in_(ids), Device.active.is_(True))
        .values(active=False, deactivated_reason=reason[:40])
    )
    return result.rowcount or 0


# Contact is recorded at this granularity: retention is counted in days, and rewriting every
# row on every location upload would make the database the bottleneck of bulk ingest.
TOUCH_GRANULARITY = timedelta(hours=1)


def touch(session: Session, device_ids: Sequence[int]) -> None:
    """Record contact from devices (keeps them from the retention purge)."""
    now = utcnow()
    for chunk in db.in_chunks(session, list(device_ids)):
        session.execute(
            update(Device)
            .where(
                db.in_values(session, Device.id, chunk),
                Device.last_contact_at < now - TOUCH_GRANULARITY,
            )
            .values(last_contact_at=now)
        )


class DeviceError(ValueError):
    """A device request that cannot be applied; names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def upsert(
    session: Session,
    partner_id: int,
    external_id: str,
    *,
    platform: Platform,
    address: str,
    locale: str,
    opted_in: bool,
    test_device: bool = False,
) -> Device:
    """Create or update one device's registration (not its location)."""
    device = session.scalar(
        select(Device).where(Device.partner_id == partner_id, Device.external_id == external_id)
    )
    if device is None:
        device = Device(partner_id=partner_id, external_id=external_id)
        session.add(device)
    device.platform = platform.value
    device.address_enc = crypto.encrypt(address)
    device.locale = locale
    device.opted_in = opted_in
    device.test_device = test_device
    # A re-registration with a fresh token brings a deactivated device back.
    device.active = True
    device.deactivated_reason = None
    device.last_contact_at = utcnow()
    session.flush()
    return device


def ids_for(
    session: Session,
    partner_id: int,
    external_ids: Sequence[str],
    *,
    contact_due: set[int] | None = None,
) -> dict[str, int]:
    """Registry ids of a partner's devices by external id (missing ones are absent).

    Given `contact_due`, adds to it the ids whose last contact is older than
    TOUCH_GRANULARITY: the only rows `touch` would change, found by the same query, so an upload
    of devices seen within the hour skips the UPDATE altogether.
    """
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(external_ids))
    due = Device.last_contact_at < utcnow() - TOUCH_GRANULARITY
    for chunk in db.in_chunks(session, unique):
        rows = session.execute(
            select(Device.external_id, Device.id, due).where(
                Device.partner_id == partner_id,
                db.in_values(session, Device.external_id, chunk),
            )
        )
        for external_id, device_id, stale in rows:
            found[external_id] = device_id
            if stale and contact_due is not None:
                contact_due.add(device_id)
    return found


def get_device(session: Session, partner_id: int, external_id: str) -> Device | None:
    """One of the partner's devices."""
    return session.scalar(
        select(Device).where(Device.partner_id == partner_id, Device.external_id == external_id)
    )


def purge_silent(session: Session, before) -> list[int]:
    """Delete devices with no contact since `before`; returns their ids for the index."""
    ids = list(session.scalars(select(Device.id).where(Device.last_contact_at < before)))
    for start in range(0, len(ids), 5000):
        session.execute(delete(Device).where(Device.id.in_(ids[start : start + 5000])))
    return ids


def location_index() -> LocationIndex:
    """The live location index on the configured Redis."""
    settings = get_settings()
    return LocationIndex(
        get_redis(), prefix="geo", staleness=timedelta(hours=settings.location_staleness_hours)
    )


def is_located(index: LocationIndex, device_id: int) -> bool:
    """True when the index holds a location for the device."""
    chunk, slot = device_id >> CHUNK_BITS, device_id & ((1 << CHUNK_BITS) - 1)
    [code] = index.client.bitfield(index.map.key(chunk)).get("u32", f"#{slot}").execute()
    return bool(code)
