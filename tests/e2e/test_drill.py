"""A drill through `reunite serve`: only test devices and opted-in partners, marked everywhere.

Before drills had an audience and a mark, a drill case reached every real device in the area
with a push, SMS and webhook that looked exactly like a real alert (0 of 77 messages marked).
"""

from __future__ import annotations

import contextlib

import pytest

from ops.peers import apns as apns_sink
from ops.peers import keys
from ops.peers import webhook as webhook_sink
from tests.e2e.support import cli, login, new_submitted_case, serve_with_apns
from tests.e2e.test_alert_flow import TOPIC, place
from tests.workers import wait_for

pytestmark = pytest.mark.slow
MARKS = ("【演练】", "EXERCISE: ")


def partner(env, tmp_path, name: str, hook_url: str, secret: str, *, drills: bool) -> dict:
    args = ["partners", "create", name, "--kind", "app", "--scope", "devices:write"]
    args += ["--webhook-url", f"{hook_url}/hooks/{name}", "--webhook-secret", secret]
    out = cli([*args, *(["--drills"] if drills else [])], env, tmp_path)
    return {"Authorization": f"Bearer {out.split()[-1]}"}


def test_drill_reaches_only_test_devices_and_opted_in_partners_marked_on_every_message(tmp_path):
    key = keys.make_apns_key()
    sink = apns_sink.ApnsSink(
        topic=TOPIC, team_id=key.team_id, key_id=key.key_id, public_key=key.public_key
    )
    opted, other = (webhook_sink.WebhookReceiver(secret=keys.make_webhook_secret()) for _ in "ab")
    with contextlib.ExitStack() as stack:
        http, env = serve_with_apns(stack, tmp_path, sink, key, TOPIC, tmp_path / "d")
        drill_app = partner(
            env,
            tmp_path,
            "DrillApp",
            stack.enter_context(webhook_sink.running(opted)).url,
            opted.secret,
            drills=True,
        )
        partner(
            env,
            tmp_path,
            "PlainApp",
            stack.enter_context(webhook_sink.running(other)).url,
            other.secret,
            drills=False,
        )
        for i in range(6):
            lat, lon = place(2 + i, 40 * i)
            body = {"platform": "apns", "address": f"tok-{i}-0123456789", "lat": lat, "lon": lon}
            body["test_device"] = i < 2  # two of the partner's own test handsets
            res = http.put(f"/api/v1/partner/devices/dev-{i}", json=body, headers=drill_app)
            assert res.status_code == 200, res.text

        officer, sup = login(http, "officer1"), login(http, "sup1", env, tmp_path)
        case_id = new_submitted_case(http, officer)
        assert http.put(f"/api/v1/cases/{case_id}/drill", headers=sup).status_code == 204
        assert http.post(f"/api/v1/cases/{case_id}/approve", headers=sup).status_code == 200
        test_tokens = {"tok-0-0123456789", "tok-1-0123456789"}
        wait_for(lambda: {p.token for p in sink.accepted} >= test_tokens, 120)
        wait_for(lambda: any(e.event["data"]["kind"] == "alert" for e in opted.events), 30)
        assert http.post(f"/api/v1/cases/{case_id}/resolve", headers=officer).status_code == 200
        wait_for(lambda: any(e.event["data"]["kind"] == "resolved" for e in opted.events), 60)
        wait_for(
            lambda: sum(p.payload["reunite"]["kind"] == "resolved" for p in sink.accepted) == 2,
            60,
        )

    assert {p.token for p in sink.accepted} == test_tokens, "a real device got the drill"
    for push in sink.accepted:
        alert = push.payload["aps"]["alert"]
        assert alert["title"].startswith(MARKS) and alert["body"].startswith(MARKS)
        assert push.payload["reunite"]["status"] == "exercise"
    assert other.events == [], "a partner that did not opt in got the drill"
    for received in opted.events:
        data = received.event["data"]
        assert data["status"] == "exercise"
        for message in data["messages"].values():
            for text in (message["title"], message["body"], message["sms_text"]):
                assert text.startswith(MARKS)
