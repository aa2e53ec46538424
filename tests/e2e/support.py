"""Helpers for tests that drive a running `reunite serve` over HTTP and its CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.factories import PASSWORD, case_payload


def cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `reunite ARGS`; fail the test with its stderr if it fails."""
    out = subprocess.run(
        [sys.executable, "-m", "alerts.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def create_police(env: dict[str, str], cwd: Path, agency: str = "Guangzhou") -> None:
    """An officer (officer1) and a supervisor (sup1) of one agency, via the CLI."""
    for name, role, rank in [
        ("officer1", "officer", "constable"),
        ("sup1", "supervisor", "inspector"),
    ]:
        cli(
            [
                "users",
                "create",
                name,
                "--role",
                role,
                "--rank",
                rank,
                "--agency",
                agency,
                "--password",
                PASSWORD,
            ],
            env,
            cwd,
        )


def ready(http: httpx.Client) -> bool:
    """True once /readyz answers 200."""
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def login(http: httpx.Client, username: str) -> dict[str, str]:
    """Authorization header from the token endpoint."""
    res = http.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert res.status_code == 200, res.text
    return {"Authorization": f"Bearer {res.json()['access_token']}"}


def new_submitted_case(http: httpx.Client, officer: dict[str, str]) -> str:
    """Create and submit a valid case; returns its id."""
    res = http.post("/api/v1/cases", json=case_payload(), headers=officer)
    assert res.status_code == 201, res.text
    case_id = res.json()["id"]
    assert http.post(f"/api/v1/cases/{case_id}/submit", headers=officer).status_code == 200
    return case_id


def serve_with_apns(stack, tmp_path: Path, sink, key, topic: str, data: Path):
    """`reunite serve` on the embedded Redis and SQLite, its APNs pointed at the loopback peer
    (quick beat ticks), with officer1 and sup1 of agency GZ; returns (HTTP client, env)."""
    import json

    from ops.peers import apns as apns_sink
    from ops.peers._runtime import temp_tls
    from tests.workers import free_port, reunite_env, reunite_process, wait_for

    tls = stack.enter_context(temp_tls())
    apns = stack.enter_context(apns_sink.running(sink, tls=tls))
    channels = {
        "apns": {
            "base_url": apns.url,
            "topic": topic,
            "team_id": key.team_id,
            "key_id": key.key_id,
            "auth_key": key.private_pem,
            "transport": {"ca_bundle": str(apns.ca_bundle)},
        },
    }
    env = reunite_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        REUNITE_DATA_DIR=str(data),
        REUNITE_MODE="development",
        REUNITE_RELAY_INTERVAL_SECONDS="1",
        REUNITE_WAVE_TICK_SECONDS="1",
        REUNITE_CHANNELS=json.dumps(channels),
    )
    port = free_port()
    stack.enter_context(
        reunite_process(["serve", "--port", str(port)], env, tmp_path, tmp_path / "serve.log")
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    wait_for(lambda: ready(http), timeout=60)
    create_police(env, tmp_path, agency="GZ")
    return http, env
