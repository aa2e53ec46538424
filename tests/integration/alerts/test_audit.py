"""The audit chain detects edited and deleted entries on real databases."""

from __future__ import annotations

from sqlalchemy import select, text
from typer.testing import CliRunner

from alerts.cli import app
from ops.platform.audit import service as audit
from ops.platform.audit.models import AuditEntry
from ops.platform.db import session_scope


def write_entries(n: int) -> None:
    with session_scope() as s:
        for i in range(n):
            audit.record(s, actor="user:1", action="case.updated", subject=f"case:{i}")


def test_intact_chain_verifies(database):
    write_entries(5)
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "5 entries" in result.output


def test_edited_entry_is_detected(database):
    write_entries(5)
    with session_scope() as s:
        s.execute(text("UPDATE audit_log SET actor = 'user:666' WHERE seq = 3"))
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "entry 3: content was edited" in result.output


def test_deleted_entry_is_detected(database):
    write_entries(5)
    with session_scope() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "entries 2..2 are missing" in result.output
    assert "entry 3: does not link" in result.output


def test_each_entry_links_to_the_previous_hash(database):
    write_entries(3)
    with session_scope() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert rows[0].prev_hash == audit.GENESIS
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash


def test_erased_reason_leaves_the_chain_intact_and_an_edited_reason_is_detected(database):
    with session_scope() as s:
        audit.record(s, actor="user:1", action="case.cancelled", subject="case:a", reason="dup")
        audit.record(s, actor="user:1", action="case.resolved", subject="case:b", reason="found")
    with session_scope() as s:
        assert audit.erase_reasons(s, "case:a") == 1
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    with session_scope() as s:
        assert s.scalar(select(AuditEntry.reason).where(AuditEntry.subject == "case:a")) is None
        s.execute(text("UPDATE audit_log SET reason = 'lost' WHERE subject = 'case:b'"))
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "entry 2: reason was edited" in result.output


# Someone who can write the database (its owner, a stolen backup restored with edits) but
# does not hold the audit key. Before keyed hashing, each of these recomputed the plain
# SHA-256 chain and `reunite audit verify` said "intact".


def forge(row: AuditEntry) -> str:
    """What an attacker without the key can compute: the unkeyed hash of the entry."""
    return audit._legacy_hash(row)


def rechain(s, rows: list[AuditEntry]) -> None:
    """Recompute every link and hash from the first row on, as a careful forger would."""
    prev = rows[0].prev_hash
    for row in rows:
        row.prev_hash = prev
        row.hash = forge(row)
        prev = row.hash
    s.flush()


def verify_output() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify"])
    return result.exit_code, result.output


def test_an_edited_approval_with_the_chain_recomputed_is_detected(database):
    write_entries(5)
    with session_scope() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        rows[2].actor = "user:666"
        rechain(s, rows[2:])
    code, out = verify_output()
    assert code == 1 and "entry 3: content was edited or forged" in out, out


def test_a_deleted_entry_with_the_rest_renumbered_and_rechained_is_detected(database):
    write_entries(5)
    with session_scope() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        s.delete(rows[1])
        s.flush()
        for row in rows[2:]:
            row.seq -= 1
            s.flush()
        rows[2].prev_hash = rows[0].hash
        rechain(s, rows[2:])
    code, out = verify_output()
    assert code == 1 and "entry 2: content was edited or forged" in out, out


def test_a_forged_approval_appended_is_detected(database):
    write_entries(3)
    with session_scope() as s:
        head = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        fake = AuditEntry(
            seq=4,
            at=head.at,
            actor="user:2",
            action="case.approved",
            subject="case:x",
            reason_digest=None,
            detail={},
            prev_hash=head.hash,
            key_id=head.key_id,
        )
        fake.hash = audit.entry_hash(fake, b"a guess at the key, 32 bytes long")
        s.add(fake)
        unkeyed = AuditEntry(
            seq=5,
            at=head.at,
            actor="user:2",
            action="case.approved",
            subject="case:y",
            detail={},
            prev_hash=fake.hash,
            key_id=None,
        )
        unkeyed.hash = forge(unkeyed)
        s.add(unkeyed)
    code, out = verify_output()
    assert code == 1, out
    assert "entry 4: content was edited or forged" in out
    assert "entry 5: unkeyed entry after keyed ones (forged)" in out


def test_truncating_the_newest_entries_is_caught_by_the_signed_checkpoint(
    database, tmp_path, monkeypatch
):
    from tests.conftest import clear_caches

    monkeypatch.setenv("REUNITE_AUDIT_CHECKPOINT_PATH", str(tmp_path / "cp" / "audit.jsonl"))
    clear_caches()
    write_entries(10)
    assert CliRunner().invoke(app, ["audit", "checkpoint"]).exit_code == 0
    code, out = verify_output()
    assert code == 0 and "10 entries, 1 checkpoints" in out, out
    assert oct((tmp_path / "cp" / "audit.jsonl").stat().st_mode & 0o777) == "0o600"
    with session_scope() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq > 5"))
    code, out = verify_output()
    assert code == 1 and "entry 10 (checkpointed" in out and "truncated" in out, out


def test_a_checkpoint_forged_to_match_a_truncated_log_is_detected(database, tmp_path, monkeypatch):
    import json

    from tests.conftest import clear_caches

    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("REUNITE_AUDIT_CHECKPOINT_PATH", str(path))
    clear_caches()
    write_entries(4)
    assert CliRunner().invoke(app, ["audit", "checkpoint"]).exit_code == 0
    doc = json.loads(path.read_text())
    with session_scope() as s:
        doc["seq"], doc["hash"] = 2, s.scalar(select(AuditEntry.hash).where(AuditEntry.seq == 2))
    path.write_text(json.dumps(doc) + "\n")
    code, out = verify_output()
    assert code == 1 and "checkpoint line 1: not signed by a known audit key" in out, out


def test_rotated_keys_keep_verifying_older_entries_and_an_unknown_key_is_named(
    database, monkeypatch
):
    from tests.conftest import clear_caches

    old, new = "k1:" + "o" * 40, "k2:" + "n" * 40
    monkeypatch.setenv("REUNITE_AUDIT_KEYS", old)
    clear_caches()
    write_entries(2)
    monkeypatch.setenv("REUNITE_AUDIT_KEYS", f"{new},{old}")
    clear_caches()
    write_entries(2)
    with session_scope() as s:
        assert [r.key_id for r in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))] == [
            "k1",
            "k1",
            "k2",
            "k2",
        ]
    assert verify_output()[0] == 0
    monkeypatch.setenv("REUNITE_AUDIT_KEYS", new)  # the old key dropped too early
    clear_caches()
    code, out = verify_output()
    assert code == 1 and "entry 1: signed with an unknown key 'k1'" in out, out
