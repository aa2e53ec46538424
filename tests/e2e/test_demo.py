"""`reunite demo` from nothing: seeded devices, local sinks, demo users; a case reaches phones."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.factories import case_payload
from tests.workers import free_port, reunite_env, wait_for

pytestmark = pytest.mark.slow
SINKS = re.compile(r"^sinks: apns ([\d,]+), fcm ([\d,]+), sms ([\d,]+), webhook ([\d,]+)$", re.M)


def latest_sinks(log: Path) -> dict[str, int] | None:
    """The last sink counts the demo printed."""
    found = SINKS.findall(log.read_text(errors="replace"))
    if not found:
        return None
    values = [int(v.replace(",", "")) for v in found[-1]]
    return dict(zip(["apns", "fcm", "sms", "webhook"], values, strict=True))


def login(
    http: httpx.Client, username: str, password: str, totp: str | None = None
) -> dict[str, str]:
    data = {"username": username, "password": password}
    if totp is not None:  # the demo prints the supervisors' TOTP secrets
        data["totp"] = pyotp.TOTP(totp).now()
    res = http.post("/api/v1/auth/token", data=data)
    assert res.status_code == 200, res.text
    return {"Authorization": f"Bearer {res.json()['access_token']}"}


def test_demo_seeds_starts_sinks_and_an_approved_case_is_delivered(tmp_path):
    data = tmp_path / "d"
    port = free_port()
    env = reunite_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        REUNITE_DATA_DIR=str(data),
        REUNITE_MODE="development",
        REUNITE_RELAY_INTERVAL_SECONDS="1",
        REUNITE_WAVE_TICK_SECONDS="1",
    )
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "demo", "--devices", "2000", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: (
                "Reunite demo is ready." in log.read_text(errors="replace")
                or proc.poll() is not None
            ),
            timeout=120,
        )
        assert proc.poll() is None, log.read_text()
        text = log.read_text()
        assert f"http://127.0.0.1:{port}/console/" in text
        creds = json.loads((data / "demo-credentials.json").read_text())
        assert set(creds["passwords"]) == {"officer1", "sup1", "operator1", "admin1"}
        assert creds["passwords"]["sup1"] in text, "the banner prints the credentials"

        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        officer = login(http, "officer1", creds["passwords"]["officer1"], creds["totp"]["officer1"])
        sup = login(http, "sup1", creds["passwords"]["sup1"], creds["totp"]["sup1"])
        res = http.post("/api/v1/cases", json=case_payload(), headers=officer)
        assert res.status_code == 201, res.text
        case_id = res.json()["id"]
        assert http.post(f"/api/v1/cases/{case_id}/submit", headers=officer).status_code == 200
        started = time.monotonic()
        res = http.post(f"/api/v1/cases/{case_id}/approve", headers=sup)
        assert res.status_code == 200, res.text

        deadline = time.monotonic() + 150
        counts = latest_sinks(log)
        while not (counts and counts["apns"] and counts["fcm"] and counts["webhook"]):
            tail = log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"no deliveries at the sinks: {counts}\n{tail}"
            time.sleep(0.5)
            counts = latest_sinks(log)
        took = time.monotonic() - started
        ledger = http.get(f"/api/v1/cases/{case_id}/deliveries", headers=sup).json()
        sent = sum(row["sent"] for row in ledger["totals"])
        targeted = sum(row["targeted"] for row in ledger["totals"])
        assert sent > 0 and targeted > 0, ledger
        metrics = http.get("/metrics").text
        assert 'reunite_deliveries_total{channel="apns"' in metrics
        print(
            f"demo: 2000 devices, approval -> sinks saw apns={counts['apns']} fcm={counts['fcm']} "
            f"sms={counts['sms']} webhook={counts['webhook']} in {took:.1f}s; "
            f"ledger targeted={targeted} sent={sent}"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert not (data / "redis.sock").exists() or proc.returncode is not None
