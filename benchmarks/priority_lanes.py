"""Priority lanes: a new case's first push, and a closure's partner notice, during a big fan-out.

    python benchmarks/priority_lanes.py                    # 100,000-device fan-out, 20 new cases
    python benchmarks/priority_lanes.py --devices 20000 --cases 10

Case A's first wave reaches --devices APNs devices around Guangzhou (nginx h2 sink, real
worker, SQLite, embedded Redis, as benchmarks/fanout.py). While it is sending, --cases new
cases are approved one after another in Beijing, each reaching 10 devices there: the figure is
approval -> first push answered 200 for each. Then case A is resolved while still sending: the
figure is resolve -> the partner's webhook receiver holding `alert.resolved`, and how many of
A's devices were still to be alerted when it arrived (they are withdrawn, not sent).
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
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fanout as bench  # noqa: E402  (the same sink, worker and registry set-up)

BEIJING = (39.90, 116.40)
GUANGZHOU = (23.13, 113.26)


def locate(ids, center, spread: float) -> None:
    """Give these devices fresh locations around a centre."""
    import numpy as np

    from geo import cells
    from geo.devices import service as devices

    rng = np.random.default_rng(len(ids))
    lat = center[0] + rng.uniform(-spread, spread, len(ids))
    lon = center[1] + rng.uniform(-spread, spread, len(ids))
    devices.location_index().ingest(np.array(ids), cells.snap_many(lat, lon), datetime.now(UTC))


def approve(case_id: str) -> float:
    """Approve as the supervisor and relay, as the API does; returns the start time."""
    from sqlalchemy import select

    from alerts.cases import service as cases
    from alerts.users.models import User
    from ops.platform.db import session_scope
    from ops.platform.outbox import relay

    start = time.perf_counter()
    with session_scope() as s:
        sup = s.scalar(select(User).where(User.username == "bench-sup"))
        cases.approve(s, case_id, sup)
    relay.relay_now()
    return start


def sent(case_id: str, partner: int) -> int:
    from channels import ledger
    from ops.platform.redis_client import get_redis

    raw = get_redis().hget(ledger.counts_key(f"{case_id}:alert:0:1"), f"apns:{partner}:sent")
    return int(raw or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (prefork)")
    args = parser.parse_args()

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="prio-")))
        os.environ["REUNITE_DATA_DIR"] = str(workdir)
        from ops.peers import webhook as webhook_sink
        from ops.peers._runtime import temp_tls

        tls = stack.enter_context(temp_tls())
        use_nginx = shutil.which("nginx") is not None
        url = stack.enter_context(
            bench.nginx_sink(workdir, tls) if use_nginx else bench.python_sink(tls)
        )
        receiver = webhook_sink.WebhookReceiver(secret="whsec_" + "B" * 32)
        hook = stack.enter_context(webhook_sink.running(receiver))
        from ops.peers import keys

        key = keys.make_apns_key()
        os.environ["REUNITE_CHANNELS"] = json.dumps(
            {
                "apns": {
                    "base_url": url,
                    "topic": "cn.reunite.app",
                    "team_id": key.team_id,
                    "key_id": key.key_id,
                    "auth_key": key.private_pem,
                    "connections": 4,
                    "streams_per_connection": 300,
                    "transport": {"ca_bundle": str(tls.cert)},
                },
                "apns_batch": 1000,
                "apns_concurrency": 1200,
                "apns_rate_per_s": 1_000_000,
            }
        )
        if "REDIS_URL" not in os.environ:
            from ops.platform.embedded import EmbeddedRedis

            embedded = EmbeddedRedis(workdir / "redis")
            embedded.start()
            stack.callback(embedded.stop)
            os.environ["REDIS_URL"] = embedded.url
        from alerts import bootstrap, migrate
        from ops.platform.config import get_settings
        from ops.platform.redis_client import get_redis

        migrate.upgrade()
        bootstrap.wire()
        get_redis().flushdb()
        _bench_case, partner = bench.setup(args.devices + 10 * args.cases)
        from sqlalchemy import select

        from channels import service as channels
        from geo.devices.models import Device
        from ops.platform.db import session_scope

        with session_scope() as s:
            ids = list(s.scalars(select(Device.id).order_by(Device.id)))
            channels.add_endpoint(s, partner, f"{hook.url}/hooks/bench", receiver.secret)
        locate(ids[: args.devices], GUANGZHOU, 0.4)
        locate(ids[args.devices :], BEIJING, 0.1)

        env = dict(os.environ)
        env.setdefault("DATABASE_URL", get_settings().sqlalchemy_url)
        log = open(workdir / "worker.log", "wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "worker", "--concurrency", str(args.workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(lambda: (os.killpg(worker.pid, signal.SIGTERM), worker.wait(30)))
        bench.wait(lambda: b"ready" in (workdir / "worker.log").read_bytes(), 60)

        big = bench.submitted_case(GUANGZHOU)
        approve(big)
        bench.wait(lambda: sent(big, partner) >= min(5000, args.devices // 10), 120)
        latencies = []
        for _ in range(args.cases):
            case_id = bench.submitted_case(BEIJING)
            start = approve(case_id)
            while sent(case_id, partner) == 0:
                time.sleep(0.001)
            latencies.append(time.perf_counter() - start)
        during = sent(big, partner)

        from alerts.cases import service as cases
        from alerts.users.models import User
        from ops.platform.outbox import relay

        with session_scope() as s:
            sup = s.scalar(select(User).where(User.username == "bench-sup"))
            cases.resolve(s, big, sup, "found safe")
        resolved_at = time.perf_counter()
        relay.relay_now()

        def resolved_event() -> bool:
            return any(
                e.event["type"] == "alert.resolved" and e.event["data"]["case_id"] == big
                for e in receiver.events
            )

        bench.wait(resolved_event, 120)
        to_partner = time.perf_counter() - resolved_at
        at_notice = sent(big, partner)

    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"fan-out: case A, {args.devices:,} APNs devices, {args.workers} worker processes")
    print(
        f"new cases during it: approval -> first push p50 {p50:.0f} ms, p99 {p99:.0f} ms over "
        f"{len(latencies)} cases (A had sent {during:,} by the last)"
    )
    print(
        f"resolve A -> partner holds alert.resolved: {to_partner:.2f} s "
        f"(A had sent {at_notice:,} of {args.devices:,}; the rest are withdrawn)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
