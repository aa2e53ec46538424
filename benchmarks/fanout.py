"""Fan-out benchmark: 100,000 APNs devices through the real queue and workers to an HTTP/2 sink.

    python benchmarks/fanout.py                   # 100k devices, 20 latency runs, 2 workers
    python benchmarks/fanout.py --devices 20000 --workers 1

By default the clock starts at a supervisor's approval (cases.service.approve plus the relay the
API runs right after the commit) and runs through the dispatch task, the wave engine (plan, start
wave, per-shard targeting and claims) and the APNs channel; each run is a new case whose first
wave covers exactly the devices measured. `--from-fanout` starts at `fan_out_devices` on a
created message instead, to isolate the channel half. The sink is nginx
(`listen ... ssl http2; return 200;`) when installed, else ops/peers/apns.py in this process
(much slower: say so in any figure you record). h2load against the same sink gives the ceiling.
Time to the last push is when the ledger's `sent` counter reaches the device count (each count
is written after the sink answered 200). First-push latency is from fan_out_devices to the
first `sent` count of a 10-device case (an upper bound: it includes the Redis mark).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NGINX_CONF = """
worker_processes 1;
error_log {dir}/nginx-error.log error;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 1000;
    client_body_buffer_size 16k;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200; }}
    }}
}}
"""


@contextmanager
def nginx_sink(workdir: Path, tls):
    """nginx answering 200 to everything over TLS + HTTP/2; yields its base URL."""
    from ops.peers._runtime import free_port

    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port, cert=tls.cert, key=tls.key))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"])
    try:
        from ops.peers._runtime import _wait_listening

        class _Never:
            def done(self):
                return proc.poll() is not None

            def result(self):
                raise RuntimeError("nginx exited")

        _wait_listening("127.0.0.1", port, _Never())
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def python_sink(tls):
    """Fallback: the project's APNs sink (JWT not verified) in this process."""
    from ops.peers import apns as apns_sink

    sink = apns_sink.ApnsSink(topic="cn.reunite.app", team_id="T", key_id="K", public_key=None)
    with apns_sink.running(sink, tls=tls) as endpoint:
        yield endpoint.url


def h2load_rate(url: str, workdir: Path, payload: bytes) -> str:
    """h2load's request rate against the sink (the ceiling for any client)."""
    if shutil.which("h2load") is None:
        return "h2load not installed (apt-get install nghttp2-client)"
    body = workdir / "payload.json"
    body.write_bytes(payload)
    out = subprocess.run(
        [
            "h2load",
            "-n",
            "200000",
            "-c",
            "4",
            "-m",
            "100",
            "-t",
            "2",
            "-d",
            str(body),
            "-H",
            "apns-topic: cn.reunite.app",
            f"{url}/3/device/{'a' * 64}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    m = re.search(r"finished in ([\d.]+)m?s, ([\d.]+) req/s", out)
    if m is None:
        return out[-300:]
    ok = re.search(r"status codes: (\d+) 2xx", out)
    return f"{float(m.group(2)):,.0f} req/s ({ok.group(1) if ok else '?'} 2xx)" if m else out[-500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (prefork)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--python-sink", action="store_true", help="skip nginx")
    parser.add_argument("--profile", help="write py-spy's collapsed stacks of the 100k run here")
    parser.add_argument(
        "--from-fanout",
        action="store_true",
        help="start the clock at fan_out_devices instead of at approval (channel layer only)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ru-bench-"))
    with ExitStack() as stack:
        from ops.peers import keys
        from ops.peers._runtime import make_self_signed

        tls = make_self_signed(workdir / "tls")
        if shutil.which("nginx") and not args.python_sink:
            url, sink_name = stack.enter_context(nginx_sink(workdir, tls)), "nginx (h2, TLS)"
        else:
            url = stack.enter_context(python_sink(tls))
            sink_name = "ops/peers/apns.py in the benchmark process (nginx not found)"
        key = keys.make_apns_key()
        import json

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
                    "connections": args.connections,
                    "streams_per_connection": args.streams,
                    "transport": {"ca_bundle": str(tls.cert)},
                },
                "apns_batch": args.batch,
                "apns_concurrency": args.streams * args.connections,
                "apns_rate_per_s": 1_000_000,
            }
        )
        if not os.environ.get("REDIS_URL"):
            from ops.platform.embedded import EmbeddedRedis

            redis_dir = Path(tempfile.mkdtemp(prefix="ru-"))
            embedded = EmbeddedRedis(redis_dir)
            embedded.start()
            stack.callback(embedded.stop)
            os.environ["REDIS_URL"] = embedded.url
        from alerts import bootstrap, migrate
        from ops.platform.redis_client import get_redis

        migrate.upgrade()
        bootstrap.wire()  # routes, handlers and ports, as in the API and workers
        get_redis().flushdb()
        case_id, partner = setup(args.devices)
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
                "apns" if args.from_fanout else "dispatch,geo,apns",
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
        measure = run if args.from_fanout else run_from_approval
        measure(case_id, partner, 10, warm=True)  # open connections, render once per process

        latencies = sorted(measure(case_id, partner, 10)[0] for _ in range(args.runs))
        cpu_before = tree_cpu(worker.pid)
        spy = None
        if args.profile:  # py-spy's collapsed stacks of every worker process, for flamegraphs
            spy = subprocess.Popen(
                ["py-spy", "record", "--subprocesses", "--gil", "--format", "raw", "--rate", "200",
                 "--pid", str(worker.pid), "--output", args.profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
        elapsed = measure(case_id, partner, args.devices)[1]
        worker_cpu = tree_cpu(worker.pid) - cpu_before
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        # The channel alone, in this process, on the same sink and in the same run: the anchor.
        from benchmarks.apns_channel import measure as channel_alone

        ch_wall, ch_cpu, _ = channel_alone(
            url, tls.cert, min(args.devices, 30_000), args.connections, args.streams
        )
        ch_n = min(args.devices, 30_000)
        from channels.apns import build_payload
        from channels.messages import render
        from tests.peers.samples import sample_content

        payload = build_payload(render(sample_content()), "case-x") or b"{}"
        ceiling = h2load_rate(url, workdir, payload)

    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"sink: {sink_name}")
    print(
        f"workers: 1 x prefork {args.workers}, batch {args.batch}, "
        f"{args.connections} connections x {args.streams} streams per process"
    )
    start = "fan_out_devices" if args.from_fanout else "approval"
    print(
        f"fan-out: {args.devices:,} devices in {elapsed:.2f}s = {args.devices / elapsed:,.0f} "
        f"pushes/s ({start} -> last push answered 200)"
    )
    print(
        f"first push: p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(latencies)} runs "
        f"({start} -> first push answered 200)"
    )
    per_push = worker_cpu / args.devices * 1e6
    alone = ch_cpu / ch_n * 1e6
    print(
        f"worker CPU: {per_push:.0f} us per push (all worker processes, whole pipeline); "
        f"channel alone {alone:.0f} us per push ({ch_n / ch_wall:,.0f} pushes/s): "
        f"{per_push / alone:.2f}x"
    )
    print(f"h2load ceiling on the same sink: {ceiling}")
    return 0


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def setup(n: int) -> tuple[str, int]:
    """A case, a partner and n APNs devices (bulk insert)."""
    from datetime import UTC, datetime, timedelta

    from alerts.cases.models import Case, CaseDetails
    from alerts.partners import service as partners
    from alerts.users.models import Agency, User
    from ops.platform.db import session_scope

    with session_scope() as s:
        agency = Agency(name="Bench PSB")
        s.add(agency)
        s.flush()
        user = User(
            username="bench",
            password_hash="x",
            role="officer",
            rank="constable",
            agency_id=agency.id,
        )
        s.add(user)
        s.add(
            User(
                username="bench-sup",
                password_hash="x",
                role="supervisor",
                rank="inspector",
                agency_id=agency.id,
            )
        )
        s.flush()
        case = Case(
            id="bench-case",
            state="active",
            agency_id=agency.id,
            created_by_id=user.id,
            last_seen_at=datetime.now(UTC) - timedelta(minutes=20),
            last_seen_lat=23.13,
            last_seen_lon=113.26,
            alert_languages=["zh-CN", "en"],
            tip_line="110",
        )
        case.details = CaseDetails(
            child={
                "name": "Bench Child",
                "sex": "female",
                "age_years": 6,
                "height_cm": 115,
                "clothing": "red jacket",
            },
            last_seen_address="Beijing Road, Guangzhou",
        )
        s.add(case)
        partner = partners.create_partner(s, "BenchApp", partners.PartnerKind.APP, actor="bench")
        partner_id = partner.id
    from _registry import seed_apns_devices

    seed_apns_devices(partner_id, n)
    return "bench-case", partner_id


_ids_cache: dict[int, list[int]] = {}


def run(case_id: str, partner: int, n: int, warm: bool = False) -> tuple[float, float]:
    """One message to the first n devices; (seconds to first push, seconds to last push)."""
    from sqlalchemy import select

    from channels import ledger, service
    from channels.messages import MessageKind
    from geo.devices.models import Device
    from ops.platform.db import session_scope
    from ops.platform.redis_client import get_redis

    if n not in _ids_cache:
        with session_scope() as s:
            _ids_cache[n] = list(s.scalars(select(Device.id).order_by(Device.id).limit(n)))
    with session_scope() as s:
        message_id = service.create_message(s, case_id, MessageKind.UPDATE, 0, None).id
    r = get_redis()
    key = ledger.counts_key(message_id)
    field = f"apns:{partner}:sent"
    start = time.perf_counter()
    service.fan_out_devices(message_id, _ids_cache[n])
    first = None
    while True:
        sent = int(r.hget(key, field) or 0)
        now = time.perf_counter()
        if sent and first is None:
            first = now - start
        if sent >= n:
            return first or 0.0, now - start
        time.sleep(0.0005 if first is None else 0.01)


def run_from_approval(
    _case_id: str, partner: int, n: int, warm: bool = False
) -> tuple[float, float]:
    """A new case whose first wave reaches the first n devices, approved by a second user;
    (seconds from approval to the first push, to the last push), through dispatch, the wave
    engine's shard targeting and the APNs channel."""
    from datetime import UTC, datetime

    import numpy as np
    from sqlalchemy import select

    from alerts.cases import service as cases
    from alerts.users.models import User
    from channels import ledger
    from geo import cells
    from geo.devices import service as devices
    from geo.devices.models import Device
    from ops.platform.db import session_scope
    from ops.platform.outbox import relay
    from ops.platform.redis_client import get_redis

    if n not in _located:
        # Only these n devices have a location, all within 50 km: wave 0 (100 km) is them.
        with session_scope() as s:
            ids = np.array(list(s.scalars(select(Device.id).order_by(Device.id).limit(n))))
        index = devices.location_index()
        for other in _located.values():
            index.remove(other.tolist())
        rng = np.random.default_rng(n)
        lat = 23.13 + rng.uniform(-0.4, 0.4, n)
        lon = 113.26 + rng.uniform(-0.4, 0.4, n)
        index.ingest(ids, cells.snap_many(lat, lon), datetime.now(UTC))
        _located.clear()
        _located[n] = ids
    case_id = submitted_case((23.13, 113.26))
    with session_scope() as s:
        sup_id = s.scalar(select(User.id).where(User.username == "bench-sup"))
    r = get_redis()
    key = ledger.counts_key(f"{case_id}:alert:0:1")
    field = f"apns:{partner}:sent"
    start = time.perf_counter()
    with session_scope() as s:
        cases.approve(s, case_id, s.get(User, sup_id))
    relay.relay_now()  # what the API does right after the approval commits
    first = None
    while True:
        sent = int(r.hget(key, field) or 0)
        now = time.perf_counter()
        if sent and first is None:
            first = now - start
        if sent >= n:
            return first or 0.0, now - start
        time.sleep(0.001 if first is None else 0.01)


_located: dict[int, object] = {}


def submitted_case(center: tuple[float, float]) -> str:
    """A case submitted by the bench officer, last seen at centre 20 minutes ago; its id."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from alerts.cases.models import Case, CaseDetails
    from alerts.users.models import User
    from ops.platform.db import session_scope

    case_id = str(uuid.uuid4())
    with session_scope() as s:
        officer = s.scalar(select(User).where(User.username == "bench"))
        case = Case(
            id=case_id,
            state="submitted",
            agency_id=officer.agency_id,
            created_by_id=officer.id,
            submitted_by_id=officer.id,
            last_seen_at=datetime.now(UTC) - timedelta(minutes=20),
            last_seen_lat=center[0],
            last_seen_lon=center[1],
            alert_languages=["zh-CN", "en"],
            tip_line="110",
        )
        case.details = CaseDetails(
            child={"name": "Bench Child", "sex": "female", "age_years": 6, "height_cm": 115},
            last_seen_address="Bench Road",
        )
        s.add(case)
    return case_id


def wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("worker did not start")
        time.sleep(0.1)


if __name__ == "__main__":
    raise SystemExit(main())
