"""Partner-issue fixtures: a migrated database, the suite's Redis, users and an API client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from alerts.app import create_app
from alerts.users.roles import Rank, Role
from tests.factories import make_agency, make_user


@pytest.fixture
def world(database, redis_client):
    redis_client.flushdb()
    make_agency("Guangzhou PSB")
    ids = {
        "officer": make_user("officer1", Role.OFFICER, "Guangzhou PSB"),
        "sup": make_user("sup1", Role.SUPERVISOR, "Guangzhou PSB", Rank.INSPECTOR),
        "admin": make_user("admin1", Role.ADMIN, "Guangzhou PSB"),
    }
    return ids


@pytest.fixture
def api(world):
    with TestClient(create_app()) as client:
        yield client
