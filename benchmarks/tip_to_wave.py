"""Tip-to-wave benchmark: a partner's tip received -> promoted -> first push of the new wave.

    python benchmarks/tip_to_wave.py                      # 10 runs, 2,000 devices, 2 workers
    python benchmarks/tip_to_wave.py --runs 20 --devices 10000 --workers 1

What it times is the part the system controls, around the officer's two clicks: the partner's
`POST /api/v1/partner/tips` through the real app (in-process ASGI client, real database and
Redis), then at once "credible" and "promote" (alerts.tips.service, as the console routes do,
with the relay the route runs after its commit), then the real worker processes: the sighting's
dispatch, the new epoch's wave 0 (plan, shard targeting, claims) and the APNs channel, to the
first push the sink answered 200 (the ledger's `sent` count, as benchmarks/fanout.py reads it).

Each run is a new case last seen in Guangzhou whose first wave has already reached the half of
the devices around it; the tip is 40 km west (inside REUNITE_LIVE_CHANGE_MAX_KM, so no second
person is needed), and the other half of the devices lies 70-90 km beyond it, outside the first
area and inside the new one. The run also checks that the new wave pushes to exactly those
devices (no device already alerted is alerted again). The sink and the worker set-up are
benchmarks/fanout.py's: nginx (h2, TLS) when installed, else ops/peers/apns.py in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

# A module in benchmarks/ must never shadow an installed package (it once shadowed h2's `priority`):
# this directory goes last, so fanout and _registry still resolve.
HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in (HERE, "")]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(HERE)

CENTRE = (23.13, 113.26)
TIP = (23.13, 112.867)  # 40 km west of the centre


def locate(ids_home, ids_far) -> None:
    """Home devices within 5 km of the centre; the others 70-90 km west of the tip."""
    from datetime import UTC, datetime

    import numpy as np

    from geo import cells
    from geo.devices import service as devices

    rng = np.random.default_rng(7)
    index = devices.location_index()
    lat = CENTRE[0] + rng.uniform(-0.03, 0.03, len(ids_home))
    lon = CENTRE[1] + rng.uniform(-0.03, 0.03, len(ids_home))
    index.ingest(ids_home, cells.snap_many(lat, lon), datetime.now(UTC))
    lat = TIP[0] + rng.uniform(-0.1, 0.1, len(ids_far))
    lon = TIP[1] - rng.uniform(0.69, 0.87, len(ids_far))  # 70-90 km west at this latitude
    index.ingest(ids_far, cells.snap_many(lat, lon), datetime.now(UTC))


def sent(message_id: str, partner: int) -> int:
    from channels import ledger
    from ops.platform.redis_client import get_redis

    return int(get_redis().hget(ledger.counts_key(message_id), f"apns:{partner}:sent") or 0)


def until(check, timeout: float = 120.0, step: float = 0.001):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("the pipeline did not finish in time (see the worker log)")
        time.sleep(step)


def one_run(client, key: str, partner: int, n_home: int, n_far: int) -> dict[str, float]:
    """One case: approve, let wave 0 finish, then time tip -> promotion -> new wave's push."""
    from datetime import UTC, datetime, timedelta

    from fanout import submitted_case
    from sqlalchemy import select

    from alerts.cases import service as cases
    from alerts.tips import service as tips
    from alerts.tips.triage import TipState
    from alerts.users.models import User
    from channels.models import Message
    from geo.waves.models import Wave
    from ops.platform.db import session_scope
    from ops.platform.outbox import relay

    case_id = submitted_case(CENTRE)
    with session_scope() as s:
        sup = s.scalar(select(User).where(User.username == "bench-sup"))
        cases.approve(s, case_id, sup)
    relay.relay_now()
    first_message = f"{case_id}:alert:0:1"
    until(lambda: sent(first_message, partner) >= n_home, step=0.01)

    body = {
        "message_id": first_message,
        "text": "bench tip",
        "seen_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "location": {"lat": TIP[0], "lon": TIP[1], "accuracy_m": 20},
    }
    start = time.perf_counter()
    res = client.post("/api/v1/partner/tips", json=body, headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 201, res.text
    received = time.perf_counter()
    with session_scope() as s:
        officer = s.scalar(select(User).where(User.username == "bench"))
        tips.triage(s, case_id, res.json()["id"], TipState.CREDIBLE, officer)
        tips.promote(s, case_id, res.json()["id"], officer)
    relay.relay_now()  # what the console route runs after its commit
    promoted = time.perf_counter()

    def new_message() -> str | None:
        with session_scope() as s:
            return s.scalar(
                select(Wave.message_id).where(
                    Wave.case_id == case_id, Wave.epoch == 1, Wave.message_id.isnot(None)
                )
            )

    def update_message() -> str | None:
        with session_scope() as s:
            return s.scalar(
                select(Message.id).where(Message.case_id == case_id, Message.kind == "update")
            )

    message_id = until(new_message, step=0.002)
    update_id = until(update_message, step=0.002)
    update_first = update_last = None
    while not sent(message_id, partner):
        told = sent(update_id, partner)
        now = time.perf_counter()
        if told and update_first is None:
            update_first = now
        if told >= n_home and update_last is None:
            update_last = now
        time.sleep(0.001)
    first_push = time.perf_counter()
    until(lambda: sent(message_id, partner) >= n_far, step=0.01)
    time.sleep(0.5)  # anything beyond n_far would be a device alerted twice
    again = sent(message_id, partner)
    assert again == n_far, f"new wave pushed {again}, expected exactly {n_far}"
    return {
        "received": received - start,
        "promoted": promoted - start,
        "first_push": first_push - start,
        "after_promotion": first_push - promoted,
        # The sighting's update to everyone already told, and whether it finished first.
        "update_first": (update_first or first_push) - start,
        "update_done_before_wave": 1.0 if update_last is not None else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--devices", type=int, default=2000, help="half near, half beyond")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (prefork)")
    parser.add_argument("--python-sink", action="store_true", help="skip nginx")
    args = parser.parse_args()

    import numpy as np

    workdir = Path(tempfile.mkdtemp(prefix="ru-bench-"))
    with ExitStack() as stack:
        from fanout import nginx_sink, python_sink, setup, wait

        from ops.peers import keys
        from ops.peers._runtime import make_self_signed

        tls = make_self_signed(workdir / "tls")
        if shutil.which("nginx") and not args.python_sink:
            url, sink_name = stack.enter_context(nginx_sink(workdir, tls)), "nginx (h2, TLS)"
        else:
            url = stack.enter_context(python_sink(tls))
            sink_name = "ops/peers/apns.py in the benchmark process (nginx not found)"
        key = keys.make_apns_key()
        os.environ.setdefault("REUNITE_MODE", "test")
        os.environ["REUNITE_DATA_DIR"] = str(workdir)
        os.environ["REUNITE_CHANNELS"] = json.dumps(
            {
                "apns": {
                    "base_url": url,
                    "topic": "cn.reunite.app",
                    "team_id": key.team_id,
                    "key_id": key.key_id,
                    "auth_key": key.private_pem,
                    "transport": {"ca_bundle": str(tls.cert)},
                },
                "apns_rate_per_s": 1_000_000,
            }
        )
        if not os.environ.get("REDIS_URL"):
            from ops.platform.embedded import EmbeddedRedis

            embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="ru-")))
            embedded.start()
            stack.callback(embedded.stop)
            os.environ["REDIS_URL"] = embedded.url
        from fastapi.testclient import TestClient
        from sqlalchemy import select

        from alerts import bootstrap, migrate
        from alerts.app import create_app
        from alerts.partners import service as partners
        from alerts.partners.models import Partner
        from geo.devices.models import Device
        from ops.platform.db import session_scope
        from ops.platform.redis_client import get_redis

        migrate.upgrade()
        bootstrap.wire()
        get_redis().flushdb()
        _case, partner = setup(args.devices)
        with session_scope() as s:
            ids = np.array(list(s.scalars(select(Device.id).order_by(Device.id))))
            tip_key = partners.issue_key(
                s, s.get(Partner, partner), [partners.Scope.TIPS_WRITE], actor="bench"
            )
            s.get(Partner, partner).rate_limit_per_minute = 100_000
        half = len(ids) // 2
        locate(ids[:half], ids[half:])
        env = dict(os.environ)
        if "DATABASE_URL" not in env:
            from ops.platform.config import get_settings

            env["DATABASE_URL"] = get_settings().sqlalchemy_url
        log = open(workdir / "worker.log", "wb")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alerts.cli",
                "worker",
                "--queues",
                "dispatch,geo,apns",
                "--concurrency",
                str(args.workers),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(lambda: (os.killpg(worker.pid, signal.SIGTERM), worker.wait(30)))
        wait(lambda: b"ready" in (workdir / "worker.log").read_bytes(), 60)
        client = stack.enter_context(TestClient(create_app()))
        one_run(client, tip_key, partner, half, len(ids) - half)  # warm-up
        runs = [one_run(client, tip_key, partner, half, len(ids) - half) for _ in range(args.runs)]

    def p(name: str, q: float) -> float:
        values = sorted(r[name] for r in runs)
        return values[min(len(values) - 1, int(len(values) * q))] * 1000

    print(f"sink: {sink_name}; workers: 1 x prefork {args.workers}; runs: {len(runs)}")
    print(f"devices: {half:,} alerted by wave 0, {len(ids) - half:,} reached only by the new wave")
    for name, label in (
        ("received", "tip received (201)"),
        ("promoted", "credible + promoted (committed, relayed)"),
        ("first_push", "first push of the new wave (answered 200)"),
        ("after_promotion", "promotion -> first push"),
        ("update_first", "first push of the update to those told"),
    ):
        median = statistics.median(r[name] for r in runs) * 1000
        print(f"{label:45s} p50 {median:7.0f} ms   p90 {p(name, 0.9):7.0f} ms")
    done = sum(r["update_done_before_wave"] for r in runs)
    print(
        f"runs where the update to all {half:,} told finished before the wave's first push: "
        f"{done:.0f} of {len(runs)}"
    )
    print("re-alerts: none (each new wave pushed exactly to the devices the first area missed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
