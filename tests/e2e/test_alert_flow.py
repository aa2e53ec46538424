"""The whole flow through `reunite serve`: approval -> waves -> shards -> APNs and webhooks.

Real processes (API, worker, beat), the embedded Redis, SQLite, a local APNs HTTP/2 server and
a webhook receiver. Devices near the last-seen place get the alert once; a sighting moves the
centre and reaches new devices without re-alerting; resolving sends the closing notice.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest
from pyproj import Geod

from ops.peers import apns as apns_sink
from ops.peers import keys
from ops.peers import webhook as webhook_sink
from tests.e2e.support import cli, login, new_submitted_case, serve_with_apns
from tests.workers import wait_for

pytestmark = pytest.mark.slow
GEOD = Geod(ellps="WGS84")
CENTER = (23.1291, 113.2644)
TOPIC = "org.reunite.app"


def place(km: float, azimuth: float, origin=CENTER) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(origin[1], origin[0], azimuth, km * 1000)
    return lat, lon


def kinds_by_token(sink: apns_sink.ApnsSink) -> Counter:
    return Counter((p.token, p.payload["reunite"]["kind"]) for p in sink.accepted)


def test_alert_reaches_devices_in_the_area_once_then_follows_a_sighting_and_closes(tmp_path):
    key = keys.make_apns_key()
    secret = keys.make_webhook_secret()
    sink = apns_sink.ApnsSink(
        topic=TOPIC, team_id=key.team_id, key_id=key.key_id, public_key=key.public_key
    )
    receiver = webhook_sink.WebhookReceiver(secret=secret)
    with contextlib.ExitStack() as stack:
        hook_url = stack.enter_context(webhook_sink.running(receiver)).url
        http, env = serve_with_apns(stack, tmp_path, sink, key, TOPIC, tmp_path / "d")
        out = cli(
            [
                "partners",
                "create",
                "MapsApp",
                "--kind",
                "app",
                "--scope",
                "devices:write",
                "--webhook-url",
                f"{hook_url}/hooks/maps",
                "--webhook-secret",
                secret,
            ],
            env,
            tmp_path,
        )
        partner = {"Authorization": f"Bearer {out.split()[-1]}"}

        new_center = place(350, 270)
        points = {f"near-{i:03d}": place(2 + i, 10 * i) for i in range(40)}
        points |= {f"west-{i:03d}": place(3 + i, 7 * i, origin=new_center) for i in range(10)}
        points["far-000"] = place(900, 0)
        rows = [
            {
                "id": name,
                "lat": lat,
                "lon": lon,
                "platform": "apns",
                "address": f"tok-{name}-0123456789",
            }
            for name, (lat, lon) in points.items()
        ]
        res = http.post("/api/v1/partner/devices/bulk", json=rows, headers=partner)
        assert res.status_code == 200 and res.json()["applied"] == len(rows), res.text

        officer, sup = login(http, "officer1"), login(http, "sup1", env, tmp_path)
        case_id = new_submitted_case(http, officer)
        assert http.post(f"/api/v1/cases/{case_id}/approve", headers=sup).status_code == 200

        near = {f"tok-{n}-0123456789" for n in points if n.startswith("near")}
        west = {f"tok-{n}-0123456789" for n in points if n.startswith("west")}
        wait_for(lambda: {t for t, k in kinds_by_token(sink) if k == "alert"} >= near, 120)
        wait_for(lambda: any(e.event["data"]["kind"] == "alert" for e in receiver.events), 30)
        alerted = {t for t, k in kinds_by_token(sink) if k == "alert"}
        assert alerted == near, "wave 0 (100 km) reaches exactly the near devices"

        res = http.post(
            f"/api/v1/cases/{case_id}/sightings",
            json={
                "at": _now_iso(),
                "lat": new_center[0],
                "lon": new_center[1],
                "address": "West bus station",
            },
            headers=officer,
        )
        # 350 km from the last approved place: a second supervisor lets it go out.
        assert res.status_code == 202 and res.json()["kind"] == "sighting", res.text
        change = res.json()["id"]
        res = http.post(f"/api/v1/cases/{case_id}/changes/{change}/approve", headers=sup)
        assert res.status_code == 200, res.text
        wait_for(lambda: {t for t, k in kinds_by_token(sink) if k == "alert"} >= near | west, 120)
        wait_for(lambda: {t for t, k in kinds_by_token(sink) if k == "update"} >= near, 120)

        assert http.post(f"/api/v1/cases/{case_id}/resolve", headers=officer).status_code == 200
        wait_for(
            lambda: {t for t, k in kinds_by_token(sink) if k == "resolved"} >= near | west, 120
        )
        wait_for(lambda: any(e.event["data"]["kind"] == "resolved" for e in receiver.events), 30)

        # One vocabulary: the sighting's restarted waves are updates to partners, as in CAP.
        types = [e.event["type"] for e in receiver.events]
        assert types[0] == "alert.published" and types[-1] == "alert.resolved", types
        assert set(types) == {"alert.published", "alert.updated", "alert.resolved"}, types
        assert types.count("alert.published") == 1, "one first alert; the rest are updates"

        counts = kinds_by_token(sink)
        duplicates = {key: n for key, n in counts.items() if n > 1}
        assert duplicates == {}, f"devices alerted twice: {duplicates}"
        assert not any(t.startswith("tok-far") for t, _ in counts), "a device 900 km away"
        ledger = http.get(f"/api/v1/cases/{case_id}/deliveries", headers=sup)
        assert ledger.status_code == 200, ledger.text
        print(
            f"targeted={len(near | west)} delivered={len({t for t, _ in counts})} "
            f"duplicated={len(duplicates)} lost=0"
        )
        # The embedded database, Redis' append-only file and everything else in the data
        # directory are the service user's only (they hold the child's details).
        data = tmp_path / "d"
        assert (data / "reunite.db").exists() and any(data.rglob("*.aof"))
        exposed = [
            str(p.relative_to(data))
            for p in data.rglob("*")
            if (p.is_file() or p.is_dir()) and p.stat().st_mode & 0o077
        ]
        assert exposed == [], f"readable by others: {exposed}"


def _now_iso() -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
