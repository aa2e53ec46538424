"""Erasure: after the retention nothing personal of the child is left anywhere we keep data."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import String, cast, select

from alerts.cases.models import Case
from alerts.feeds import photos, sse
from alerts.feeds import service as feeds
from alerts.models import metadata
from alerts.privacy import tasks as privacy_tasks
from channels import fanout
from channels import service as channels
from geo.waves.models import Sighting
from ops.peers import webhook as webhook_sink
from ops.platform import blobstore
from ops.platform.audit import service as audit
from ops.platform.config import get_settings
from ops.platform.db import get_engine, session_scope
from ops.platform.redis_client import get_redis
from tests.factories import CHILD_NAME, token, uploaded_photo
from tests.integration.partners.support import (
    GUANGZHOU,
    add_sighting,
    approved_case,
    bearer,
    close,
    create_partner,
    start_first_wave,
)

MARKER = CHILD_NAME.encode()


def rows_with_marker() -> list[str]:
    """Every table and column whose text form holds the marker."""
    hits = []
    with get_engine().connect() as conn:
        for table in metadata.sorted_tables:
            for column in table.columns:
                query = select(cast(column, String)).where(
                    cast(column, String).contains(CHILD_NAME)
                )
                if conn.execute(query).first() is not None:
                    hits.append(f"{table.name}.{column.name}")
    return hits


def _redis_values(client, key: bytes) -> list[bytes]:
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key) or b""]
    if kind == "hash":
        return [k + b"=" + v for k, v in client.hgetall(key).items()]
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1)
    if kind == "stream":
        return [b" ".join(k + b"=" + v for k, v in f.items()) for _, f in client.xrange(key)]
    return []


def _decoded(value: bytes) -> bytes:
    # Celery's messages in the broker lists carry a base64 body.
    try:
        doc = json.loads(value)
        if isinstance(doc, dict) and doc.get("properties", {}).get("body_encoding") == "base64":
            return value + base64.b64decode(doc["body"])
    except (ValueError, TypeError):
        pass
    return value


def redis_with_marker() -> list[str]:
    """Every Redis key whose name or value holds the marker."""
    client = get_redis()
    hits = []
    for key in client.scan_iter(count=1000):
        if MARKER in key or any(MARKER in _decoded(v) for v in _redis_values(client, key)):
            hits.append(key.decode(errors="replace"))
    return hits


def files_with_marker(root: Path) -> list[str]:
    """Every file under the data dir holding the marker."""
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and MARKER in p.read_bytes()
    ]


@pytest.fixture
def receiver():
    sink = webhook_sink.WebhookReceiver(secret="whsec_" + "A" * 32)
    with webhook_sink.running(sink) as endpoint:
        yield sink, endpoint.url


def test_nothing_personal_survives_erasure_in_tables_redis_or_files(world, api, receiver):
    sink, url = receiver
    settings = get_settings()
    photo = uploaded_photo(world["officer"], b"\xff\xd8 pixels of " + MARKER)
    blobstore.store_for(settings).put("photo_0001abcd.thumb.jpg", MARKER, "image/jpeg")
    key = bearer(
        create_partner(api, token(api, "admin1"), "MapsApp", area=[GUANGZHOU])["key"]["key"]
    )
    created = api.post("/api/v1/partner/webhooks", json={"url": f"{url}/hooks/m"}, headers=key)
    sink.secret = created.json()["secret"]

    case_id = approved_case(world, photos=[photo])
    alert_id = start_first_wave(case_id)
    fanout.run_webhook(
        alert_id,
        created.json()["endpoint"]["id"],
        0,
        time.time(),
        settings.channels,
        channels.delivery_for,
    )
    assert CHILD_NAME in json.dumps(sink.events[0].event, ensure_ascii=False)
    add_sighting(world, case_id, 23.3, 113.1)
    with session_scope() as s:
        s.scalars(select(Sighting)).first().note = f"{CHILD_NAME} seen near the bus station"
    assert CHILD_NAME.encode() in api.get("/api/v1/feeds/atom", headers=key).content
    # Officers type free text: the reason names the child, and it reaches the audit log too.
    close(world, case_id, reason=f"{CHILD_NAME} found safe at her aunt's")
    assert rows_with_marker(), "the test case must really hold the marker before erasure"

    with session_scope() as s:
        s.get(Case, case_id).closed_at -= timedelta(days=settings.erasure_retention_days, hours=1)
    assert privacy_tasks.erase_due() == 1

    assert rows_with_marker() == []
    assert redis_with_marker() == []
    assert files_with_marker(settings.data_dir) == []
    assert photos.names_of(settings, "photo_0001abcd") == []
    with session_scope() as s:
        case = s.get(Case, case_id)
        assert case.details is None and case.close_reason is None
        assert (case.last_seen_lat, case.state) == (23.3, "resolved")  # statistics remain
        docs = feeds.case_documents(s, case, settings)
    # The published documents held the child's details: the feeds drop them, and a partner
    # fetching one is told it is gone.
    assert docs == []
    gone = api.get(f"/api/v1/feeds/cap/reunite:{alert_id}", headers=key)
    assert gone.status_code == 410 and MARKER.decode() not in gone.text
    assert get_redis().xlen(sse.STREAM) == 3
    assert privacy_tasks.erase_due() == 0, "an erased case is not erased again"
    with session_scope() as s:
        assert audit.verify(s).ok, "erasing audit reasons must not break the hash chain"


def test_active_case_is_never_erased(world):
    case_id = approved_case(world)
    start_first_wave(case_id)
    assert privacy_tasks.erase_due() == 0
    with session_scope() as s:
        assert s.get(Case, case_id).details is not None


def test_abandoned_and_rejected_drafts_are_cancelled_then_erased(world, monkeypatch):
    """Before, a draft never submitted (or rejected and never resubmitted) kept the child's
    details for ever: erasure only took closed cases."""
    from alerts.cases import service as cases
    from alerts.cases.schemas import CaseCreate
    from alerts.users.models import User
    from ops.platform.audit.models import AuditEntry
    from tests.conftest import clear_caches
    from tests.factories import case_payload

    monkeypatch.setenv("REUNITE_ERASURE_RETENTION_DAYS", "0")
    clear_caches()
    with session_scope() as s:
        officer, sup = s.get(User, world["officer"]), s.get(User, world["sup"])
        abandoned = cases.create(
            s, CaseCreate.model_validate(case_payload()), officer, get_settings()
        )
        rejected = cases.create(
            s, CaseCreate.model_validate(case_payload()), officer, get_settings()
        )
        fresh = cases.create(s, CaseCreate.model_validate(case_payload()), officer, get_settings())
        cases.submit(s, rejected.id, officer)
        cases.reject(s, rejected.id, sup, "wrong photo")
        ids = abandoned.id, rejected.id, fresh.id
    with session_scope() as s:
        for case_id in ids[:2]:
            s.get(Case, case_id).updated_at -= timedelta(
                days=get_settings().draft_retention_days + 1
            )

    assert privacy_tasks.erase_due() == 2

    with session_scope() as s:
        stale = [s.get(Case, i) for i in ids[:2]]
        assert [(c.state, c.details) for c in stale] == [("cancelled", None)] * 2
        assert s.get(Case, ids[2]).details is not None, "a recent draft is kept"
    with session_scope() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.subject == f"case:{ids[0]}"))
        assert {"case.cancelled", "case.erased"} <= {e.action for e in entries}
