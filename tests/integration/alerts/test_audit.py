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
