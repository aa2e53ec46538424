"""CLI commands that need the database say how to create it: `reunite users create` before the
first start printed a 60-line traceback ("no such table: agencies")."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.factories import PASSWORD
from tests.workers import reunite_env


@pytest.mark.parametrize("database", ["embedded (no data directory yet)", "an empty DATABASE_URL"])
def test_a_command_before_the_schema_exists_says_run_db_upgrade(tmp_path, database):
    url = None if database.startswith("embedded") else f"sqlite:///{tmp_path / 'empty.db'}"
    env = reunite_env(DATABASE_URL=url, REUNITE_DATA_DIR=str(tmp_path / "d"))
    out = subprocess.run(
        [sys.executable, "-m", "alerts.cli", "users", "create", "officer9", "--role", "officer"]
        + ["--agency", "GZ", "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "run `reunite db upgrade` first" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_api_names_the_route_sets_it_knows():
    from typer.testing import CliRunner

    from alerts.cli import app

    out = CliRunner().invoke(app, ["api", "--routes", "partners"])
    assert out.exit_code == 2
    assert "choose all, ingest or main" in out.output
