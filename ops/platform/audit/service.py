"""Append to and verify the hash-chained audit log.

Each entry's hash covers its content and the previous entry's hash, so editing or deleting any
entry breaks every later link. Entries carry ids and reasons, never a child's personal data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ops.platform.audit.models import AuditEntry
from ops.platform.clock import utcnow

GENESIS = "0" * 64


def digest(reason: str | None) -> str | None:
    """SHA-256 of a reason text (what the chain covers)."""
    return hashlib.sha256(reason.encode()).hexdigest() if reason is not None else None


def erase_reasons(session: Session, subject: str) -> int:
    """Clear the reason texts of a subject's entries; their digests keep the chain intact."""
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.subject == subject, AuditEntry.reason.isnot(None))
    ).all()
    for row in rows:
        row.reason = None
    return len(rows)


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over a canonical JSON form of the entry, including the previous entry's hash."""
    body = json.dumps(
        {
            "seq": entry.seq,
            "at": entry.at.isoformat(timespec="microseconds"),
            "actor": entry.actor,
            "action": entry.action,
            "subject": entry.subject,
            "reason": entry.reason_digest,
            "detail": entry.detail,
            "prev": entry.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        # Serialise appenders so two transactions never chain onto the same head.
        session.execute(text("SELECT pg_advisory_xact_lock(7275747)"))
    head = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
    entry = AuditEntry(
        seq=seq,
        at=utcnow(),
        actor=actor,
        action=action,
        subject=subject,
        reason=reason,
        reason_digest=digest(reason),
        detail=detail or {},
        prev_hash=prev,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class Verification:
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session) -> Verification:
    """Walk the chain and report every edited, deleted or reordered entry."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
        count += 1
        if entry.seq != expected_seq:
            problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing (deleted)")
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.seq}: does not link to the entry before it")
        if entry_hash(entry) != entry.hash:
            problems.append(f"entry {entry.seq}: content was edited (hash mismatch)")
        elif entry.reason is not None and digest(entry.reason) != entry.reason_digest:
            problems.append(f"entry {entry.seq}: reason was edited (digest mismatch)")
        prev = entry.hash
        expected_seq = entry.seq + 1
    return Verification(entries=count, problems=problems)


def count(session: Session) -> int:
    """Number of audit entries."""
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0
