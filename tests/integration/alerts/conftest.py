"""The case API tests' client: agencies in a hierarchy, an officer and supervisors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from alerts.app import create_app
from alerts.users.roles import Rank, Role
from tests.factories import make_agency, make_user


@pytest.fixture
def api(database):
    make_agency("Guangdong PSB")
    make_agency("Guangzhou PSB", parent="Guangdong PSB")
    make_agency("Shenzhen PSB", parent="Guangdong PSB")
    make_user("officer1", Role.OFFICER, "Guangzhou PSB")
    make_user("sup1", Role.SUPERVISOR, "Guangzhou PSB", Rank.INSPECTOR)
    make_user("provsup", Role.SUPERVISOR, "Guangdong PSB", Rank.SUPERINTENDENT)
    make_user("szsup", Role.SUPERVISOR, "Shenzhen PSB", Rank.INSPECTOR)
    make_user("admin", Role.ADMIN, "Guangdong PSB")
    with TestClient(create_app()) as client:
        yield client
