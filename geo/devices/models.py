"""The device registry: who to reach and how. Locations live only in the Redis index (coarse)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.clock import utcnow
from ops.platform.db import Base


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("partner_id", "external_id", name="uq_devices_partner_external"),
        Index("ix_devices_last_contact", "last_contact_at"),
    )

    # The dense integer id is the device's key in the location index and alerted bitmaps.
    # SQLite autoincrements only an INTEGER PRIMARY KEY, hence the variant.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(8))
    # Push token or phone number, Fernet-encrypted (ops.platform.crypto); never logged.
    address_enc: Mapped[bytes] = mapped_column(LargeBinary)
    locale: Mapped[str] = mapped_column(String(16), default="zh-CN")
    opted_in: Mapped[bool] = mapped_column(default=True)
    # One of the partner's own test handsets: the only devices drills and system tests reach.
    test_device: Mapped[bool] = mapped_column(default=False, server_default=false())
    # False once a provider said the token or number is dead.
    active: Mapped[bool] = mapped_column(default=True)
    deactivated_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_contact_at: Mapped[datetime] = mapped_column(default=utcnow)
