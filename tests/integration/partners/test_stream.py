"""The live stream over real HTTP (uvicorn on a free port), read with the httpx-sse client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from alerts.app import create_app
from tests.factories import token
from tests.integration.partners.support import (
    GUANGZHOU,
    URUMQI,
    approved_case,
    bearer,
    close,
    create_partner,
    start_first_wave,
)
from tests.workers import serving

httpx_sse = pytest.importorskip("httpx_sse")

# Backend-independent behaviour (HTTP, Redis, workers): SQLite only, to keep the suite fast;
# the feed, webhook and erasure tests cover PostgreSQL.
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def server(world) -> Iterator[str]:
    with serving(create_app(), timeout_graceful_shutdown=2) as url:
        yield url


def read_events(base: str, headers: dict, count: int, last_id: str | None = None) -> list:
    """Read `count` events (or until a 10 s budget runs out) from the stream."""
    events = []
    if last_id:
        headers = headers | {"Last-Event-ID": last_id}
    deadline = time.monotonic() + 10
    with (
        httpx.Client(base_url=base, timeout=httpx.Timeout(5, read=3)) as client,
        httpx_sse.connect_sse(client, "GET", "/api/v1/feeds/stream", headers=headers) as source,
    ):
        assert source.response.status_code == 200
        try:
            for event in source.iter_sse():
                if not event.data:  # the retry hint frame carries no event (per the SSE spec)
                    continue
                events.append(event)
                if len(events) >= count or time.monotonic() > deadline:
                    break
        except httpx.ReadTimeout:
            pass
    return events


def test_partner_reconnecting_with_last_event_id_misses_nothing(world, server):
    with httpx.Client(base_url=server) as client:
        admin = token(client, "admin1")
        near = create_partner(client, admin, "MapsApp", area=[GUANGZHOU])["key"]["key"]
        far = create_partner(client, admin, "UrumqiNews", area=[URUMQI])["key"]["key"]
    case_a = approved_case(world)
    received: list = []
    reader = threading.Thread(
        target=lambda: received.extend(read_events(server, bearer(near), 1)), daemon=True
    )
    reader.start()
    time.sleep(1.0)  # the reader is connected and waiting
    start_first_wave(case_a)
    reader.join(timeout=15)
    assert [e.event for e in received] == ["alert.published"]
    assert received[0].json()["case_id"] == case_a
    # While the partner is away: a closing notice and a second case.
    close(world, case_a)
    case_b = approved_case(world)
    start_first_wave(case_b)
    resumed = read_events(server, bearer(near), 2, last_id=received[0].id)
    assert [(e.event, e.json()["case_id"]) for e in resumed] == [
        ("alert.resolved", case_a),
        ("alert.published", case_b),
    ]
    assert "Lin Xiaoyu" not in "".join(e.data for e in received + resumed)
    # A partner whose area the alerts miss sees none of them, even from the beginning.
    assert read_events(server, bearer(far), 1, last_id="0-0") == []


@pytest.mark.parametrize("how", ["suspend", "revoke"])
def test_suspending_the_partner_or_revoking_its_key_ends_an_open_stream(world, server, how):
    """Before, a stream opened before the partner was suspended kept receiving alerts."""
    with httpx.Client(base_url=server) as client:
        admin = token(client, "admin1")
        created = create_partner(client, admin, "MapsApp", area=[GUANGZHOU])
    key, partner_id = created["key"]["key"], created["partner"]["id"]
    prefix = created["key"]["prefix"]
    ended: list[float] = []

    def read() -> None:
        with (
            httpx.Client(base_url=server, timeout=httpx.Timeout(5, read=20)) as client,
            httpx_sse.connect_sse(
                client, "GET", "/api/v1/feeds/stream", headers=bearer(key)
            ) as source,
        ):
            for _event in source.iter_sse():
                pass
        ended.append(time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)  # connected
    with httpx.Client(base_url=server) as client:
        admin = token(client, "admin1")
        if how == "suspend":
            res = client.put(
                f"/api/v1/partners/{partner_id}/active", json={"active": False}, headers=admin
            )
        else:
            res = client.delete(f"/api/v1/partners/{partner_id}/keys/{prefix}", headers=admin)
    assert res.status_code in (200, 204), res.text
    cut = time.monotonic()
    reader.join(timeout=15)
    assert ended, "the stream stayed open"
    assert ended[0] - cut < 5.0, f"the stream ended {ended[0] - cut:.1f} s later"
