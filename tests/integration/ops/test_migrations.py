"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL
(0017 once created a timestamp without its time zone on PostgreSQL, unnoticed)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from alerts.models import metadata
from ops.platform.db import get_engine


def test_migrated_schema_matches_the_models(database):
    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], diff
