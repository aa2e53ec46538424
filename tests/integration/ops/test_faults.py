"""Faults with real components: Redis restarted mid fan-out, the database gone at approval.

Each test states its figures (targeted, delivered, duplicated, lost) in its assertion message.
The SIGKILL and partner 500/429/hang faults are in tests/integration/channels.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alerts.cases.models import Case
from alerts.users.roles import Rank, Role
from channels import service
from ops.peers import apns as apns_sink
from ops.peers import keys
from ops.peers._runtime import temp_tls
from ops.platform.audit.models import AuditEntry
from ops.platform.db import get_engine, session_scope
from ops.platform.embedded import EmbeddedRedis
from ops.platform.outbox.models import OutboxMessage
from tests.conftest import clear_caches
from tests.factories import case_payload, make_agency, make_user, token
from tests.integration.channels import fanout_env as fx
from tests.peers.config import TOPIC

pytestmark = pytest.mark.slow
DEVICES = 240


def test_redis_restart_mid_fan_out_resumes_and_loses_nothing(
    database, tmp_path, monkeypatch, redis_client
):
    # A Redis of this test's own, with the embedded default's append-only persistence.
    # A short path: unix socket paths are limited to about 100 bytes.
    short = Path("/tmp") / f"rr-{time.time_ns() % 10**8}"
    embedded = EmbeddedRedis(short)
    embedded.start()
    try:
        monkeypatch.setenv("REDIS_URL", embedded.url)
        clear_caches()
        use_broker(monkeypatch)
        key = keys.make_apns_key()
        sink = apns_sink.ApnsSink(
            topic=TOPIC,
            team_id=key.team_id,
            key_id=key.key_id,
            public_key=key.public_key,
            slow_seconds=0.25,
        )
        with contextlib.ExitStack() as stack:
            tls = stack.enter_context(temp_tls())
            ep = stack.enter_context(apns_sink.running(sink, tls=tls))
            block = {
                "base_url": ep.url,
                "topic": TOPIC,
                "team_id": key.team_id,
                "key_id": key.key_id,
                "auth_key": key.private_pem,
                "transport": {"ca_bundle": str(ep.ca_bundle), "timeout_s": 5.0},
            }
            doc = fx.channel_settings(
                apns=block, apns_batch=20, apns_concurrency=4, retry_horizon_s=120.0
            )
            channels_json = fx.apply(monkeypatch, doc)
            case_id = fx.make_case()
            partner = fx.make_partner("MapsApp")
            tokens = [f"slow-{i:04d}" for i in range(DEVICES)]
            ids = fx.add_devices(partner, "apns", tokens)
            message_id = fx.new_message(case_id)
            env = fx.worker_env(database, tmp_path, channels_json)
            with fx.worker(env, tmp_path / "w.log"):
                fx.wait_until(
                    lambda: redis_ok(embedded) and heartbeat_seen(embedded), 60, 0.2, "worker up"
                )
                service.fan_out_devices(message_id, list(ids.values()))
                fx.wait_until(lambda: len(sink.accepted) >= DEVICES // 4, 60, 0.05, "first pushes")
                at_stop = len(sink.accepted)
                embedded.stop()  # SHUTDOWN SAVE, as a maintenance restart or failover does
                time.sleep(2.0)
                embedded.start()
                fx.wait_until(
                    lambda: len({p.token for p in sink.accepted}) >= DEVICES,
                    120,
                    0.2,
                    "every device delivered after the restart",
                )
                time.sleep(1.0)  # let any late duplicate arrive before counting
        counts = Counter(p.token for p in sink.accepted)
        delivered = len(counts)
        duplicated = sum(n - 1 for n in counts.values())
        lost = len(set(tokens) - set(counts))
        figures = (
            f"targeted={DEVICES} delivered={delivered} duplicated={duplicated} lost={lost} "
            f"(Redis restarted after {at_stop} pushes)"
        )
        print(f"redis-restart: {figures}")
        assert lost == 0 and delivered == DEVICES, figures
        # Only sends in flight when Redis went away may repeat: at most a batch per worker slot.
        assert duplicated <= 2 * 20, figures
    finally:
        embedded.stop()
        shutil.rmtree(short, ignore_errors=True)
        clear_caches()


def use_broker(monkeypatch) -> None:
    """Point this process's Celery app at the configured Redis (it read the URL at import)."""
    from ops.platform.celery_app import celery_app
    from ops.platform.config import get_settings

    monkeypatch.setattr(celery_app.conf, "broker_url", get_settings().broker_url)
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


def redis_ok(embedded: EmbeddedRedis) -> bool:
    """The test's Redis answers."""
    return embedded.is_running()


def heartbeat_seen(embedded: EmbeddedRedis) -> bool:
    """A worker beat on the test's Redis (it is consuming)."""
    return bool(list(embedded.client().scan_iter(match="ops:worker:*")))


def test_database_gone_at_approval_answers_503_and_leaves_no_half_state(database, tmp_path):
    if not database.startswith("sqlite"):
        pytest.skip("the file-level outage is SQLite's; PostgreSQL outages are in the e2e tests")
    make_agency("Guangzhou PSB")
    make_user("officer1", Role.OFFICER, "Guangzhou PSB")
    make_user("sup1", Role.SUPERVISOR, "Guangzhou PSB", Rank.INSPECTOR)
    client = TestClient(create_app_fresh(), raise_server_exceptions=False)
    officer, sup = token(client, "officer1"), token(client, "sup1")
    res = client.post("/api/v1/cases", json=case_payload(), headers=officer)
    case_id = res.json()["id"]
    assert client.post(f"/api/v1/cases/{case_id}/submit", headers=officer).status_code == 200
    before = snapshot(case_id)

    # The database file disappears (an unmounted volume): every new connection fails.
    db = Path(database.removeprefix("sqlite:///"))
    get_engine().dispose()
    moved = db.with_name("moved.db")
    db.rename(moved)
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            side.rename(moved.with_name(moved.name + suffix))
    db.mkdir()  # a directory where the file was: SQLite cannot open it
    try:
        res = client.post(f"/api/v1/cases/{case_id}/approve", headers=sup)
    finally:
        db.rmdir()
        moved.rename(db)
        for suffix in ("-wal", "-shm"):
            side = moved.with_name(moved.name + suffix)
            if side.exists():
                side.rename(db.with_name(db.name + suffix))
        get_engine().dispose()
    after = snapshot(case_id)
    figures = f"status={res.status_code} before={before} after={after}"
    assert res.status_code == 503, figures
    assert res.headers.get("retry-after") == "5" and "nothing was changed" in res.text, figures
    assert after == before, f"half state after a failed approval: {figures}"

    res = client.post(f"/api/v1/cases/{case_id}/approve", headers=sup)
    assert res.status_code == 200 and res.json()["state"] == "active", res.text
    final = snapshot(case_id)
    assert final["state"] == "active" and final["outbox"] == before["outbox"] + 1, final
    print(f"db-outage: approval refused with 503, {figures}; retry approved, outbox +1, lost=0")


def create_app_fresh():
    """A new app on the current settings."""
    from alerts.app import create_app

    return create_app()


def snapshot(case_id: str) -> dict:
    """What an approval changes: the case's state and approver, outbox rows, audit entries."""
    with session_scope() as s:
        case = s.get(Case, case_id)
        return {
            "state": case.state,
            "approved_by": case.approved_by_id,
            "outbox": s.scalar(select(func.count()).select_from(OutboxMessage)),
            "audit": s.scalar(select(func.count()).select_from(AuditEntry)),
        }
