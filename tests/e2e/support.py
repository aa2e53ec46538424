"""Helpers for tests that drive a running `reunite serve` over HTTP and its CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.factories import PASSWORD, case_payload


def cli(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> str:
    """Run `reunite ARGS`; fail the test with its stderr if it fails."""
    out = subprocess.run(
        [sys.executable, "-m", "alerts.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
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
                "--password-stdin",
            ],
            env,
            cwd,
            stdin=PASSWORD + "\n",
        )


def ready(http: httpx.Client) -> bool:
    """True once /readyz answers 200."""
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


_SECRETS: dict[tuple[str, str], str] = {}  # (server, username) -> TOTP secret
_STEPS: dict[tuple[str, str], int] = {}  # the last TOTP step used per account


def login(
    http: httpx.Client, username: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """Authorization header from the token endpoint. A supervisor first enrols TOTP through
    the console, as a person would, with an enrolment code from `reunite users
    enrolment-code` (needs the server's env and cwd)."""
    account = (str(http.base_url), username)
    data = {"username": username, "password": PASSWORD}
    res = http.post("/api/v1/auth/token", data=data)
    if res.status_code == 403 and "enrol" in res.text:
        assert env is not None and cwd is not None, "enrolling needs the server's env"
        code = cli(["users", "enrolment-code", username], env, cwd).rsplit(" ", 1)[-1].strip()
        _SECRETS[account] = enrol_in_console(http, username, code)
    if account in _SECRETS:
        data["totp"] = totp_now(account)
        res = http.post("/api/v1/auth/token", data=data)
    assert res.status_code == 200, res.text
    return {"Authorization": f"Bearer {res.json()['access_token']}"}


def totp_now(account: tuple[str, str]) -> str:
    """A code for a time step this account has not used (the server takes each step once)."""
    import time

    import pyotp

    step = max(int(time.time() // 30), _STEPS.get(account, 0) + 1)
    while step > int(time.time() // 30) + 1:
        time.sleep(1)
    _STEPS[account] = step
    return pyotp.TOTP(_SECRETS[account]).at(step * 30)


def enrol_in_console(http: httpx.Client, username: str, enrolment_code: str) -> str:
    """Log in to the console, give the enrolment code, read the secret, confirm a first code;
    returns the secret."""
    import re

    csrf = re.compile(r'name="csrf_token" value="([^"]+)"')
    page = http.get("/console/login")
    http.post(
        "/console/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf.search(page.text)[1]},
    )
    page = http.get("/console/totp/enrol")
    http.post(
        "/console/totp/enrol/code",
        data={"enrolment_code": enrolment_code, "csrf_token": csrf.search(page.text)[1]},
    )
    page = http.get("/console/totp/enrol")
    secret = re.search(r'id="totp-secret">([^<]+)<', page.text)[1].replace(" ", "")
    account = (str(http.base_url), username)
    _SECRETS[account] = secret
    done = http.post(
        "/console/totp/enrol",
        data={"code": totp_now(account), "csrf_token": csrf.search(page.text)[1]},
    )
    assert done.status_code == 303, done.text
    http.cookies.clear()
    return secret


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
