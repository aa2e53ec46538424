"""The append-only audit log, chained by MACs under keys kept outside the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ops.platform.db import Base


class AuditEntry(Base):
    __tablename__ = "audit_log"

    # seq is contiguous from 1, so a deleted row shows as a gap even if the chain is rebuilt.
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(100), index=True)
    # Free text from police may name people, so the chain covers its digest, not the text:
    # erasure can clear the text and the chain still verifies (and an edited text still shows).
    reason: Mapped[str | None] = mapped_column(Text)
    reason_digest: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 under the audit key `key_id` (None: an entry from before keyed hashing,
    # plain SHA-256, accepted only before the first keyed entry).
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
