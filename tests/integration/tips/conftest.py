"""Tip tests: a migrated database, the suite's Redis, an agency's police and an API client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from alerts.users.roles import Rank, Role
from tests.factories import make_agency, make_user


@pytest.fixture
def world(database, redis_client, monkeypatch):
    redis_client.flushdb()
    # A light proof of work keeps the tests fast; the rule is the same at 18 bits.
    monkeypatch.setenv("REUNITE_TIP_POW_BITS", "8")
    from ops.platform import config

    config.get_settings.cache_clear()
    make_agency("Guangzhou PSB")
    make_agency("Shenzhen PSB")
    return {
        "officer": make_user("officer1", Role.OFFICER, "Guangzhou PSB"),
        "sup": make_user("sup1", Role.SUPERVISOR, "Guangzhou PSB", Rank.INSPECTOR),
        "sup2": make_user("sup2", Role.SUPERVISOR, "Guangzhou PSB", Rank.INSPECTOR),
        "admin": make_user("admin1", Role.ADMIN, "Guangzhou PSB"),
        "stranger": make_user("szofficer", Role.OFFICER, "Shenzhen PSB"),
    }


@pytest.fixture
def api(world):
    from alerts.app import create_app

    with TestClient(create_app(), base_url="http://testserver") as client:
        yield client
