"""`reunite serve` on embedded defaults: a case goes from intake to a dispatch run in the worker,
and stopping the embedded Redis between approval and relay loses nothing."""

from __future__ import annotations

import sqlite3

import httpx
import psutil
import pytest

from ops.platform.embedded import EmbeddedRedis
from tests.e2e.support import create_police, login, new_submitted_case, ready
from tests.workers import free_port, reunite_env, reunite_process, wait_for

pytestmark = pytest.mark.slow


def dispatch_runs(db: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT case_id, kind FROM dispatch_runs WHERE finished_at IS NOT NULL"
        ).fetchall()


def test_serve_dispatches_an_approved_case_and_survives_a_broker_outage(tmp_path):
    data = tmp_path / "d"
    env = reunite_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        REUNITE_DATA_DIR=str(data),
        REUNITE_MODE="development",
        REUNITE_RELAY_INTERVAL_SECONDS="1",
    )
    port = free_port()
    serve_log = tmp_path / "serve.log"
    with reunite_process(["serve", "--port", str(port)], env, tmp_path, serve_log) as serve:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        wait_for(lambda: ready(http), timeout=60)
        create_police(env, tmp_path)
        officer, sup = login(http, "officer1"), login(http, "sup1", env, tmp_path)

        # Two-person rule over HTTP: the submitter's own approval is refused.
        first = new_submitted_case(http, officer)
        assert http.post(f"/api/v1/cases/{first}/approve", headers=officer).status_code == 403
        assert http.post(f"/api/v1/cases/{first}/approve", headers=sup).json()["state"] == "active"
        db = str(data / "reunite.db")
        wait_for(lambda: (first, "approved") in dispatch_runs(db), timeout=60)

        # Broker down between approval and relay: the approval still commits its outbox row.
        second = new_submitted_case(http, officer)
        embedded = EmbeddedRedis(data)
        embedded.stop()
        res = http.post(f"/api/v1/cases/{second}/approve", headers=sup)
        assert res.status_code == 200 and res.json()["state"] == "active"
        assert http.get("/readyz").status_code == 503
        with sqlite3.connect(db) as conn:
            pending = conn.execute("SELECT args FROM outbox WHERE published_at IS NULL").fetchall()
        assert pending == [(f'["{second}", "approved"]',)]
        assert (second, "approved") not in dispatch_runs(db)

        embedded.start()
        wait_for(lambda: (second, "approved") in dispatch_runs(db), timeout=120)
        assert sorted(dispatch_runs(db)) == sorted([(first, "approved"), (second, "approved")])

        # A worker that dies is restarted by serve, and the API never goes away meanwhile.
        [worker] = [c for c in psutil.Process(serve.pid).children() if "worker" in c.cmdline()]
        worker.kill()
        third = new_submitted_case(http, officer)
        assert http.post(f"/api/v1/cases/{third}/approve", headers=sup).status_code == 200
        wait_for(lambda: (third, "approved") in dispatch_runs(db), timeout=120)
        assert b"worker exited with -9; restarting it" in serve_log.read_bytes()


def test_ctrl_c_stops_serve_and_every_child_within_seconds_without_tracebacks(tmp_path):
    """Ctrl-C sends SIGINT to the terminal's whole foreground group. Before, every child (and
    each worker pool process) got it too and reacted on its own ("Hitting Ctrl+C again will
    ..."); now the children have process groups of their own, only the supervisor gets it,
    and it stops them in order, killing whatever is left after its deadline."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    env = reunite_env(
        DATABASE_URL=None, REDIS_URL=None, REUNITE_DATA_DIR=str(tmp_path / "d"), REUNITE_MODE=None
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own foreground group, as in a terminal
        )
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        wait_for(lambda: ready(http), timeout=90)
        family = psutil.Process(serve.pid).children(recursive=True)
        assert len(family) >= 4, "api, worker (and its pool), webhooks, beat"
        began = time.monotonic()
        os.killpg(serve.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        serve.wait(timeout=30)
        took = time.monotonic() - began
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert "Ctrl+C" not in text, "a child got the terminal's SIGINT itself"
    assert took < 12, f"took {took:.1f} s to stop"
    left = [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], "children outlived serve"
    print(f"serve stopped on Ctrl-C in {took:.1f} s")
