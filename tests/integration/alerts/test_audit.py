"""The audit chain detects edited and deleted entries on real databases."""

from __future__ import annotations

from sqlalchemy import select, text
from typer.testing import CliRunner

from alerts.audit import service as audit
from alerts.audit.models import AuditEntry
from alerts.cli import app
from alerts.db import session_scope


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
