"""Append to and verify the keyed, hash-chained audit log, with signed checkpoints outside it.

Each entry's MAC (HMAC-SHA256 under an audit key that lives outside the database, named by
the entry's `key_id`) covers its content and the previous entry's MAC, so editing, deleting,
renumbering or appending an entry without the key breaks the chain even for someone who can
write the database and recompute hashes. Truncating the newest entries leaves a shorter chain
that still links; checkpoints catch that: every `checkpoint_interval_s` (beat) and on demand
the chain head (seq, MAC) is written, MAC'd, to an append-only file outside the database, and
`verify` requires every checkpointed entry to still be there, unchanged. Entries after the
newest checkpoint can be truncated undetected: the window is the checkpoint interval.

Keys rotate: REUNITE_AUDIT_KEYS lists "id:secret" pairs, the first signs new entries, and
the others still verify older ones. Without it one key is derived from REUNITE_SECRET_KEY.
Entries carry ids and reasons, never a child's personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ops.platform.audit.models import AuditEntry
from ops.platform.clock import utcnow
from ops.platform.config import Settings, get_settings

GENESIS = "0" * 64
DERIVED_KEY_ID = "k0"  # the key derived from REUNITE_SECRET_KEY when no audit key is set


@dataclass(frozen=True)
class AuditKeys:
    """The audit keys by id; `current` signs new entries and checkpoints."""

    current: str
    keys: dict[str, bytes]


class AuditKeyError(ValueError):
    """REUNITE_AUDIT_KEYS is malformed."""


def parse_keys(spec: str) -> AuditKeys:
    """Keys from "id:secret,id:secret" (the first one signs); secrets of 32+ characters."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for part in spec.split(","):
        key_id, sep, secret = part.strip().partition(":")
        if not sep or not key_id or len(key_id) > 32 or len(secret) < 32 or key_id in keys:
            raise AuditKeyError(
                "REUNITE_AUDIT_KEYS: expected unique 'id:secret' pairs, ids up to 32 characters"
                " and secrets of at least 32"
            )
        keys[key_id] = secret.encode()
        order.append(key_id)
    return AuditKeys(order[0], keys)


def keys_from(settings: Settings) -> AuditKeys:
    """The deployment's audit keys (outside the database: the environment or a secret file)."""
    if settings.audit_keys is not None:
        return parse_keys(settings.audit_keys.get_secret_value())
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"reunite audit chain v1"
    ).derive(settings.secret_key.get_secret_value().encode())
    return AuditKeys(DERIVED_KEY_ID, {DERIVED_KEY_ID: derived})


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


def _canonical(entry: AuditEntry) -> bytes:
    doc = {
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "reason": entry.reason_digest,
        "detail": entry.detail,
        "prev": entry.prev_hash,
    }
    if entry.key_id is not None:
        doc["key"] = entry.key_id
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _legacy_hash(entry: AuditEntry) -> str:
    """Entries written before keyed hashing (no key id): plain SHA-256."""
    return hashlib.sha256(_canonical(entry)).hexdigest()


def entry_hash(entry: AuditEntry, key: bytes) -> str:
    """HMAC-SHA256 under the audit key over a canonical form of the entry (previous MAC too)."""
    return hmac.new(key, _canonical(entry), hashlib.sha256).hexdigest()


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
    keys = keys_from(get_settings())
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
        key_id=keys.current,
    )
    entry.hash = entry_hash(entry, keys.keys[keys.current])
    session.add(entry)
    session.flush()
    return entry


# Checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    key_id: str
    mac: str

    def body(self) -> bytes:
        return f"{self.seq}|{self.hash}|{self.at}|{self.key_id}".encode()


def checkpoint_path(settings: Settings) -> Path:
    """Where checkpoints are appended (REUNITE_AUDIT_CHECKPOINT_PATH; keep it off the
    database host, e.g. a separately owned volume or a synced object store)."""
    return settings.audit_checkpoint_path or settings.data_dir / "audit-checkpoints.jsonl"


def read_checkpoints(path: Path) -> list[Checkpoint | str]:
    """The checkpoints in the file, oldest first; a line that cannot be read is its text."""
    if not path.exists():
        return []
    out: list[Checkpoint | str] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            out.append(Checkpoint(**{k: doc[k] for k in ("seq", "hash", "at", "key_id", "mac")}))
        except (ValueError, KeyError, TypeError):
            out.append(line)
    return out


def checkpoint(session: Session, settings: Settings | None = None) -> Checkpoint | None:
    """Append the chain head to the checkpoint file, signed; None when the log is empty or the
    head is already checkpointed."""
    settings = settings or get_settings()
    head = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    if head is None:
        return None
    path = checkpoint_path(settings)
    previous = [c for c in read_checkpoints(path) if isinstance(c, Checkpoint)]
    if previous and previous[-1].seq == head.seq and previous[-1].hash == head.hash:
        return None
    keys = keys_from(settings)
    unsigned = Checkpoint(head.seq, head.hash, utcnow().isoformat(), keys.current, "")
    mac = hmac.new(keys.keys[keys.current], unsigned.body(), hashlib.sha256).hexdigest()
    point = Checkpoint(unsigned.seq, unsigned.hash, unsigned.at, unsigned.key_id, mac)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(json.dumps(point.__dict__, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return point


# Verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    entries: int
    problems: list[str]
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, settings: Settings | None = None) -> Verification:
    """Walk the chain and the checkpoints; report every edited, deleted, renumbered, forged or
    truncated entry, and entries or checkpoints under an unknown key."""
    settings = settings or get_settings()
    keys = keys_from(settings)
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    seen: dict[int, str] = {}
    keyed = False
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
        count += 1
        seen[entry.seq] = entry.hash
        if entry.seq != expected_seq:
            problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing (deleted)")
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.seq}: does not link to the entry before it")
        if entry.key_id is None:
            # Before keyed hashing: only as a prefix of the log, never after a keyed entry.
            expected = _legacy_hash(entry)
            if keyed:
                problems.append(f"entry {entry.seq}: unkeyed entry after keyed ones (forged)")
        else:
            keyed = True
            key = keys.keys.get(entry.key_id)
            if key is None:
                problems.append(f"entry {entry.seq}: signed with an unknown key {entry.key_id!r}")
                expected = entry.hash
            else:
                expected = entry_hash(entry, key)
        if not hmac.compare_digest(expected, entry.hash):
            problems.append(f"entry {entry.seq}: content was edited or forged (MAC mismatch)")
        elif entry.reason is not None and digest(entry.reason) != entry.reason_digest:
            problems.append(f"entry {entry.seq}: reason was edited (digest mismatch)")
        prev = entry.hash
        expected_seq = entry.seq + 1
    points = read_checkpoints(checkpoint_path(settings))
    for n, point in enumerate(points, 1):
        if isinstance(point, str):
            problems.append(f"checkpoint line {n}: unreadable")
            continue
        key = keys.keys.get(point.key_id)
        mac = hmac.new(key, point.body(), hashlib.sha256).hexdigest() if key else ""
        if not hmac.compare_digest(mac, point.mac):
            problems.append(f"checkpoint line {n}: not signed by a known audit key")
        elif point.seq not in seen:
            problems.append(
                f"entry {point.seq} (checkpointed {point.at}) is gone: the log was truncated"
                " or entries deleted"
            )
        elif seen[point.seq] != point.hash:
            problems.append(f"entry {point.seq} differs from its checkpoint of {point.at}")
    return Verification(entries=count, problems=problems, checkpoints=len(points))


def count(session: Session) -> int:
    """Number of audit entries."""
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0
