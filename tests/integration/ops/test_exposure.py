"""What the API shows to anyone who asks: nosniff everywhere, /metrics only with its token.

Before, /metrics was public (case counts by state, partner ids) and JSON answers carried no
`X-Content-Type-Options: nosniff` (only console pages did).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import clear_caches
from tests.support.cap_signatures import production_keys

TOKEN = "m" * 40


def client() -> TestClient:
    from alerts.app import create_app

    return TestClient(create_app())


def test_every_kind_of_response_carries_nosniff(database):
    with client() as api:
        for res in (
            api.get("/livez"),
            api.get("/api/v1/cases"),  # 401
            api.post("/api/v1/auth/token", data={}),  # 422
            api.get("/no/such/route"),  # 404
        ):
            assert res.headers.get("x-content-type-options") == "nosniff", res.request.url


def test_metrics_need_the_bearer_token_when_one_is_set(database, monkeypatch):
    monkeypatch.setenv("REUNITE_METRICS_TOKEN", TOKEN)
    clear_caches()
    with client() as api:
        assert api.get("/metrics").status_code == 401
        assert api.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        res = api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200 and "reunite_cases" in res.text


@pytest.mark.parametrize("token", [None, TOKEN])
def test_production_serves_metrics_only_behind_a_token(database, monkeypatch, token, tmp_path):
    monkeypatch.setenv("REUNITE_MODE", "production")
    production_keys(monkeypatch, tmp_path / "keys")
    monkeypatch.setenv("REUNITE_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    if token:
        monkeypatch.setenv("REUNITE_METRICS_TOKEN", token)
    clear_caches()
    with client() as api:
        res = api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == (200 if token else 404)
