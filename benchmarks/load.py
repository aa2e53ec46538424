"""Load: concurrent officers reading cases and partners uploading 10,000-row location batches
through the real API while a 100,000-device APNs fan-out runs through a real worker.

    python benchmarks/load.py                       # 100k fan-out, 8 officers, 2 uploaders
    python benchmarks/load.py --devices 20000 --officers 4 --uploaders 1 --duration 30
    python benchmarks/load.py --layout split        # only the production (split) layout
    python benchmarks/load.py --proxy               # clients through ops/deploy/nginx.conf

Layouts (--layout, default both, one after the other in the same run):
  single: one `reunite api` process serves officers and partner uploads;
  split:  `reunite api --routes main` serves officers, `reunite api --routes ingest` the
          partner uploads (production's layout: nginx routes by path; here each client talks
          to its process directly, or with --proxy through production's nginx.conf).

Processes: the API process(es) (uvicorn), `reunite worker --queues apns`, an HTTP/2 sink
(nginx when installed, else ops/peers/apns.py), the embedded Redis (or REDIS_URL), SQLite
in a temporary data dir (or DATABASE_URL). This script drives the load with one thread per
client (httpx, keep-alive) and measures each request from send to full response.

Reports p50/p99/max latency and error rate per kind (case read, case list, 10k bulk upload),
while the fan-out is in progress, and the fan-out's own throughput.
Goals (issues 7 and 16): case reads p99 <= 100 ms, a 10,000-row upload p99 <= 250 ms, 0 errors.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PASSWORD = "load-test-password-1"
UPLOAD_ROWS = 10_000


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Recorder:
    """Latencies and errors per request kind, from every client thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        """Add one request's outcome."""
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)
            if error:
                self.errors.setdefault(kind, []).append(error)


def wait(check, timeout: float, what: str) -> None:
    """Poll until check() is truthy."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not reached within {timeout}s")
        time.sleep(0.2)


def setup(
    devices: int, cases: int, base: str, tag: str
) -> tuple[dict, dict, list[str], int, list[int]]:
    """Users, a partner key, devices (bulk insert) and cases; returns auth and ids. Names carry
    the run's tag, so several runs can share one database."""
    import httpx
    from sqlalchemy import select

    from alerts.partners import service as partners
    from alerts.users import service as users
    from alerts.users.roles import Rank, Role
    from geo.devices.models import Device
    from ops.platform.db import session_scope
    from tests.factories import case_payload

    with session_scope() as s:
        agency = users.create_agency(s, name=f"Load PSB {tag}")
        users.create_user(
            s,
            username=f"officer{tag}",
            password=PASSWORD,
            role=Role.OFFICER,
            rank=Rank.CONSTABLE,
            agency=agency,
        )
        users.create_user(
            s,
            username=f"sup{tag}",
            password=PASSWORD,
            role=Role.SUPERVISOR,
            rank=Rank.INSPECTOR,
            agency=agency,
        )
        partner = partners.create_partner(
            s, f"LoadMaps {tag}", partners.PartnerKind.APP, actor="load"
        )
        key = partners.issue_key(s, partner, [partners.Scope.DEVICES_WRITE], actor="load")
        partner_id = partner.id
    from _registry import seed_apns_devices

    seed_apns_devices(partner_id, devices)
    with session_scope() as s:
        ids = list(s.scalars(select(Device.id).where(Device.partner_id == partner_id)))
    http = httpx.Client(base_url=base, timeout=30)

    def login(name: str) -> dict:
        res = http.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
        res.raise_for_status()
        return {"Authorization": f"Bearer {res.json()['access_token']}"}

    officer = login(f"officer{tag}")
    case_ids = []
    for _ in range(cases):
        res = http.post("/api/v1/cases", json=case_payload(), headers=officer)
        res.raise_for_status()
        case_ids.append(res.json()["id"])
    return officer, {"Authorization": f"Bearer {key}"}, case_ids, partner_id, ids


def officer_loop(base, auth, case_ids, rec: Recorder, stop: threading.Event) -> None:
    """An officer refreshing case pages: mostly one case, sometimes the list."""
    import httpx

    with httpx.Client(base_url=base, timeout=30, headers=auth) as http:
        while not stop.is_set():
            if random.random() < 0.8:
                kind, path = "case read", f"/api/v1/cases/{random.choice(case_ids)}"
            else:
                kind, path = "case list", "/api/v1/cases?limit=20"
            started = time.perf_counter()
            try:
                res = http.get(path)
                error = None if res.status_code == 200 else f"HTTP {res.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            rec.record(kind, time.perf_counter() - started, error)
            stop.wait(random.uniform(0.02, 0.08))  # think time


def upload_bodies(devices: int, count: int) -> list[tuple[int, bytes]]:
    """`count` 10,000-row JSON bodies of fresh locations of known devices, built up front."""
    rng = random.Random()
    bodies = []
    for _ in range(count):
        start = rng.randrange(0, max(1, devices - UPLOAD_ROWS))
        rows = [
            {"id": f"d{i}", "lat": 22.5 + rng.random() * 1.5, "lon": 112.8 + rng.random() * 1.8}
            for i in range(start, min(devices, start + UPLOAD_ROWS))
        ]
        bodies.append((len(rows), json.dumps(rows).encode()))
    return bodies


def uploader_loop(base, auth, devices: int, rec: Recorder, stop) -> None:
    """A partner uploading 10,000 fresh locations of known devices per request."""
    import httpx

    bodies = upload_bodies(devices, 4)
    with httpx.Client(base_url=base, timeout=60, headers=auth) as http:
        for n in itertools.count():
            if stop.is_set():
                break
            rows, body = bodies[n % len(bodies)]
            started = time.perf_counter()
            try:
                res = http.post(
                    "/api/v1/partner/devices/bulk",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                ok = res.status_code == 200 and res.json().get("applied") == rows
                error = None if ok else f"HTTP {res.status_code}: {res.text[:120]}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            rec.record("bulk upload 10k", time.perf_counter() - started, error)
            stop.wait(0.5)


def uploaders_process(base, auth, devices: int, uploaders: int, stop, out) -> None:
    """The partner uploaders in a process of their own, as partners are other machines: their
    JSON work never holds the GIL the officers' client threads need to time their reads."""
    rec = Recorder()
    threads = [
        threading.Thread(target=uploader_loop, args=(base, auth, devices, rec, stop))
        for _ in range(uploaders)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((rec.latency, rec.errors))


def start(
    name: str, argv: list[str], env: dict, workdir: Path, stack: ExitStack
) -> subprocess.Popen:
    """A `reunite` subprocess in its own session, stopped when the stack unwinds."""
    log = open(workdir / f"{name}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "alerts.cli", *argv],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(lambda: (os.killpg(proc.pid, signal.SIGTERM), proc.wait(30), log.close()))
    return proc


def start_proxy(
    workdir: Path, layout: str, port: int, api_port: int, ingest_port: int, stack: ExitStack
) -> int:
    """ops/deploy/nginx.conf with its upstreams on this machine's ports; returns the pid."""
    root = Path(__file__).resolve().parents[1]
    conf = (root / "ops/deploy/nginx.conf").read_text()
    conf = conf.replace("server api:8000", f"server 127.0.0.1:{api_port}")
    conf = conf.replace("server ingest:8000", f"server 127.0.0.1:{ingest_port}")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{port};")
    prefix = workdir / f"proxy-{layout}"
    (prefix / "logs").mkdir(parents=True)
    (prefix / "nginx.conf").write_text(conf)
    # Workers as root: the benchmark's directories are its user's only (bodies over 16 KiB are
    # buffered to files under the prefix).
    proc = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", "nginx.conf", "-e", "logs/error.log"]
        + ["-g", "daemon off; user root;"],
        start_new_session=True,
    )
    stack.callback(lambda: (proc.terminate(), proc.wait(10)))

    def listening() -> bool:
        import socket

        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait(listening, 20, "nginx proxy")
    return proc.pid


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process with its children, and by the machine."""
    import psutil

    used = {}
    for name, pid in pids.items():
        procs = [psutil.Process(pid)]
        if pid != os.getpid():  # this process's children are the services, counted apart
            procs += procs[0].children(recursive=True)
        used[name] = sum(sum(p.cpu_times()[:2]) for p in procs)
    total = psutil.cpu_times()
    used["machine"] = sum(total) - total.idle - getattr(total, "iowait", 0)
    return used


def run_layout(layout: str, args, env: dict, workdir: Path) -> tuple[Recorder, str]:
    """One load run in one layout: start the API process(es) and a worker, seed, load, stop."""
    import httpx

    from channels import ledger, service
    from channels.messages import MessageKind
    from ops.peers._runtime import free_port
    from ops.platform.db import session_scope
    from ops.platform.redis_client import get_redis

    get_redis().flushdb()  # the index, queues and counters of an earlier layout go
    with ExitStack() as stack:
        officer_port = free_port()
        if layout == "split":
            upload_port = free_port()
            apis = [("main", officer_port), ("ingest", upload_port)]
        else:
            upload_port = officer_port
            apis = [(None, officer_port)]
        pids = {}
        for routes, port in apis:
            option = ["--routes", routes] if routes else []  # none: older code can run it too
            pids[f"api {routes or 'all'}"] = start(
                f"api-{layout}-{routes or 'all'}",
                ["api", "--port", str(port), *option],
                env,
                workdir,
                stack,
            ).pid
        pids["worker"] = start(
            f"worker-{layout}",
            ["worker", "--queues", "apns", "--concurrency", str(args.workers)],
            env,
            workdir,
            stack,
        ).pid
        officer_base = f"http://127.0.0.1:{officer_port}"
        upload_base = f"http://127.0.0.1:{upload_port}"
        if args.proxy:  # the clients reach both through production's nginx, routed by path
            proxy_port = free_port()
            pids["proxy"] = start_proxy(
                workdir, layout, proxy_port, officer_port, upload_port, stack
            )
            officer_base = upload_base = f"http://127.0.0.1:{proxy_port}"
        for _, port in apis:

            def api_up(port=port) -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait(api_up, 60, "API")
        tag = secrets.token_hex(3)
        officer, partner_auth, case_ids, partner_id, ids = setup(
            args.devices, args.cases, officer_base, tag
        )
        wait(lambda: get_redis().keys("ops:worker:*"), 60, "worker heartbeat")
        print(f"[{layout}] seeded {len(ids):,} devices, {len(case_ids)} cases", flush=True)

        rec = Recorder()
        stop = threading.Event()
        threads = [
            threading.Thread(target=officer_loop, args=(officer_base, officer, case_ids, rec, stop))
            for _ in range(args.officers)
        ]
        spawn = multiprocessing.get_context("spawn")
        upload_stop, upload_out = spawn.Event(), spawn.Queue()
        uploaders = spawn.Process(
            target=uploaders_process,
            args=(upload_base, partner_auth, len(ids), args.uploaders, upload_stop, upload_out),
        )
        uploaders.start()
        pids |= {"clients": os.getpid(), "uploaders": uploaders.pid}
        for t in threads:
            t.start()
        time.sleep(3)  # load running before the fan-out starts
        with session_scope() as s:
            message_id = service.create_message(s, case_ids[0], MessageKind.ALERT, 0, None).id
        r = get_redis()
        field = f"apns:{partner_id}:sent"
        started = time.perf_counter()
        cpu_before = cpu_seconds(pids)
        service.fan_out_devices(message_id, ids)
        sent = 0
        deadline = started + (args.duration or 900)
        while time.perf_counter() < deadline:
            sent = int(r.hget(ledger.counts_key(message_id), field) or 0)
            if not args.duration and sent >= len(ids):
                break
            time.sleep(0.2)
        fanout_s = time.perf_counter() - started
        cpu = cpu_seconds(pids)
        stop.set()
        upload_stop.set()
        for t in threads:
            t.join(timeout=90)
        latency, errors = upload_out.get(timeout=120)
        uploaders.join(timeout=30)
        rec.latency.update(latency)
        rec.errors.update(errors)
    summary = (
        f"fan-out: {sent:,} of {len(ids):,} devices pushed in {fanout_s:.1f}s "
        f"= {sent / fanout_s:,.0f} pushes/s while under load ({args.workers} worker process(es))\n"
        f"CPU cores busy meanwhile ({os.cpu_count()} on this machine): "
        + ", ".join(f"{name} {(cpu[name] - cpu_before[name]) / fanout_s:.2f}" for name in cpu)
        + " (machine: every process, other users' too)"
    )
    return rec, summary


def report(layout: str, rec: Recorder, summary: str, args) -> None:
    """The run's latency table."""
    processes = {
        "single": "one API process serves officers and uploads",
        "split": "officers on `api --routes main`, uploads on `api --routes ingest`",
    }[layout]
    proxy = "; clients through nginx (ops/deploy/nginx.conf)" if args.proxy else ""
    print(f"\n== layout {layout}: {processes}{proxy}")
    print(summary)
    print(f"clients: {args.officers} officers, {args.uploaders} partner uploaders")
    print(f"{'kind':<18}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
    for kind in sorted(rec.latency):
        lat = rec.latency[kind]
        errors = len(rec.errors.get(kind, []))
        print(
            f"{kind:<18}{len(lat):>9}{statistics.median(lat) * 1000:>9.0f}"
            f"{percentile(lat, 0.99) * 1000:>9.0f}{max(lat) * 1000:>9.0f}"
            f"{errors / len(lat):>7.1%}"
        )
    for kind, errs in rec.errors.items():
        print(f"  {kind} errors: {sorted(set(errs))[:5]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000, help="fan-out size")
    parser.add_argument("--officers", type=int, default=8, help="concurrent officer clients")
    parser.add_argument("--uploaders", type=int, default=2, help="concurrent partner uploaders")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (prefork)")
    parser.add_argument("--duration", type=float, default=0, help="0: until the fan-out ends")
    parser.add_argument("--python-sink", action="store_true", help="skip nginx")
    parser.add_argument(
        "--proxy",
        action="store_true",
        help="clients go through ops/deploy/nginx.conf (path routing), as in production",
    )
    parser.add_argument(
        "--layout",
        choices=["single", "split", "both"],
        default="both",
        help="API processes: one for everything, officers and uploads apart, or both in turn",
    )
    args = parser.parse_args()
    layouts = ["single", "split"] if args.layout == "both" else [args.layout]

    workdir = Path(tempfile.mkdtemp(prefix="ru-load-"))
    with ExitStack() as stack:
        import shutil

        stack.callback(shutil.rmtree, workdir, True)  # runs last: after processes stopped
        from benchmarks.fanout import nginx_sink, python_sink
        from ops.peers import keys
        from ops.peers._runtime import make_self_signed

        tls = make_self_signed(workdir / "tls")
        if shutil.which("nginx") and not args.python_sink:
            url, sink_name = stack.enter_context(nginx_sink(workdir, tls)), "nginx (h2, TLS)"
        else:
            url, sink_name = stack.enter_context(python_sink(tls)), "ops/peers/apns.py"
        key = keys.make_apns_key()
        os.environ.setdefault("REUNITE_MODE", "test")
        os.environ["REUNITE_DATA_DIR"] = str(workdir)
        os.environ["REUNITE_LOG_LEVEL"] = "WARNING"
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
                "apns_batch": 1000,
                "apns_rate_per_s": 1_000_000,
            }
        )
        if not os.environ.get("REDIS_URL"):
            from ops.platform.embedded import EmbeddedRedis

            redis_dir = Path(tempfile.mkdtemp(prefix="ru-"))
            stack.callback(shutil.rmtree, redis_dir, True)
            embedded = EmbeddedRedis(redis_dir)
            embedded.start()
            stack.callback(embedded.stop)
            os.environ["REDIS_URL"] = embedded.url
        from alerts import bootstrap, migrate
        from ops.platform.config import get_settings

        migrate.upgrade()
        bootstrap.wire()  # routes, handlers and ports, as in the API and workers
        env = dict(os.environ)
        env.setdefault("DATABASE_URL", get_settings().sqlalchemy_url)
        print(f"sink: {sink_name}; layouts: {', '.join(layouts)}", flush=True)
        for layout in layouts:
            rec, summary = run_layout(layout, args, env, workdir)
            report(layout, rec, summary, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
