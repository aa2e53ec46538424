"""A full case lifecycle through the API and a real worker never logs the child's name."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from alerts.cases.models import Case
from alerts.privacy import tasks as privacy_tasks
from ops.peers import webhook as webhook_sink
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.outbox import relay
from tests.factories import CHILD_NAME, case_payload, token
from tests.integration.channels.fanout_env import channel_settings
from tests.integration.partners.support import CENTER, GUANGZHOU, bearer, create_partner
from tests.workers import reunite_env, reunite_process, wait_for

# Backend-independent behaviour (HTTP, Redis, workers): SQLite only, to keep the suite fast;
# the feed, webhook and erasure tests cover PostgreSQL.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]


def kinds(sink) -> list[str]:
    relay.relay_now()  # what beat's relay tick does
    return [e.event["data"]["kind"] for e in sink.events]


def test_case_lifecycle_logs_never_name_the_child(world, api, database, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sink = webhook_sink.WebhookReceiver(secret="whsec_" + "A" * 32)
    worker_log = tmp_path / "worker.log"
    with webhook_sink.running(sink) as hook:
        admin = token(api, "admin1")
        key = bearer(create_partner(api, admin, "MapsApp", area=[GUANGZHOU])["key"]["key"])
        created = api.post(
            "/api/v1/partner/webhooks", json={"url": f"{hook.url}/hooks/m"}, headers=key
        ).json()
        sink.secret = created["secret"]
        env = reunite_env(
            DATABASE_URL=database,
            REUNITE_DATA_DIR=str(tmp_path),
            REUNITE_CHANNELS=json.dumps(channel_settings()),
        )
        with reunite_process(["worker", "--concurrency", "1"], env, tmp_path, worker_log):
            officer, sup = token(api, "officer1"), token(api, "sup1")
            payload = case_payload()
            payload["last_seen"]["lat"], payload["last_seen"]["lon"] = CENTER
            case_id = api.post("/api/v1/cases", json=payload, headers=officer).json()["id"]
            api.post(f"/api/v1/cases/{case_id}/submit", headers=officer)
            assert api.post(f"/api/v1/cases/{case_id}/approve", headers=sup).status_code == 200
            wait_for(lambda: "alert" in kinds(sink), timeout=60)
            sighting = {
                "at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                "lat": 23.2,
                "lon": 113.2,
                "address": "near the school",
                "note": f"{CHILD_NAME} seen holding a red balloon",
            }
            res = api.post(f"/api/v1/cases/{case_id}/sightings", json=sighting, headers=officer)
            assert res.status_code == 201, res.text
            wait_for(lambda: "update" in kinds(sink), timeout=60)
            assert CHILD_NAME.encode() in api.get("/api/v1/feeds/json", headers=key).content
            assert api.post(f"/api/v1/cases/{case_id}/resolve", headers=officer).status_code == 200
            wait_for(lambda: "resolved" in kinds(sink), timeout=60)
            wait_for(lambda: "succeeded" in worker_log.read_text(), timeout=10)
    with session_scope() as s:
        s.get(Case, case_id).closed_at -= timedelta(days=get_settings().erasure_retention_days + 1)
    assert privacy_tasks.erase_due() == 1

    assert caplog.records, "logs were captured"
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert CHILD_NAME not in logged
    assert "reunite.geo.start_wave" in worker_log.read_text()
    assert CHILD_NAME not in worker_log.read_text()
