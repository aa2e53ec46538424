"""Workers on several "hosts" sharing one Redis Cluster: the fan-out spreads over them and a
host killed mid-fan-out loses nothing.

    python benchmarks/hosts.py                          # 3 hosts, 100,000 APNs devices
    python benchmarks/hosts.py --hosts 4 --devices 20000 --concurrency 1

Each host is a `reunite worker` with an environment and a data directory of its own (its own
REUNITE_DATA_DIR, so its own metrics files); the hosts share only DATABASE_URL (`hosts_bench`
on the machine's PostgreSQL, reset by this script), REDIS_URL (a local 3-master Redis Cluster,
tests/support/redis_cluster.py) and CELERY_BROKER_URL (a plain redis-server). One
`reunite beat` runs the reconciler, as in production. The APNs peer is ops/peers/apns.py in
this process and records every accepted push by device token.

Two fan-outs of a new message each to every device: first with every host up, then with one
host's process group SIGKILLed at --kill-at of the devices. Per host: its processes' own
`reunite_deliveries` counters by outcome (`ok` is a push the sink answered 200; a `retry` is
one the client gave up on, e.g. a timeout, which the sink may still have accepted: that is a
duplicate the sink counts). No device may be lost in either run; the duplicates are reported,
and with a host killed they are bounded by what it had sent but not recorded (as in
faults.py's worker-kill). Exit status 1 if a device was lost or that bound was exceeded.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faults  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def host_outcomes(metrics_dir: Path) -> Counter[str]:
    """APNs delivery attempts of a host's processes by outcome, from its own metrics files."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    out: Counter[str] = Counter()
    if not metrics_dir.exists():
        return out
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "reunite_deliveries_total" and sample.labels["channel"] == "apns":
                out[sample.labels["outcome"]] += int(sample.value)
    return out


def parse_args() -> argparse.Namespace:
    """Command-line options (the reconciler knobs as faults.py's)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--devices", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=1, help="prefork processes per host")
    p.add_argument("--kill-at", type=float, default=0.3)
    p.add_argument("--batch", type=int, default=500, help="apns_batch")
    p.add_argument("--streams", type=int, default=0, help="apns_concurrency (0: default)")
    p.add_argument("--owner-grace-s", type=float, default=15.0)
    p.add_argument("--reconcile-interval-s", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--ledger-timeout", type=float, default=120.0, help="after the last push")
    p.add_argument("--keep", action="store_true")
    return p.parse_args()


def main() -> int:
    """Start the cluster, the broker and the hosts; run both fan-outs; print the figures."""
    from channels.fanout import FLUSH_EVERY
    from tests.support.redis_cluster import LocalCluster

    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The sink's connections are cancelled when a host dies; asyncio would print each one.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    faults.uncap_sink_connections()
    workdir = Path(tempfile.mkdtemp(prefix="hosts-"))
    broker = faults.RedisServer(workdir, "everysec")
    broker.start()
    cluster = LocalCluster().start()
    failures: list[str] = []
    try:
        os.environ["CELERY_BROKER_URL"] = broker.url
        faults.BENCH_DB = "hosts_bench"  # not faults.py's database: both may run at once
        database = faults.shared_database()
        with faults.apns_world(args, "hosts", database, cluster.url, args.devices) as world:
            hosts = []
            for i in range(args.hosts):
                data = workdir / f"host{i}"
                data.mkdir()
                env = dict(world.env)
                env.pop("PROMETHEUS_MULTIPROC_DIR", None)
                env.update(REUNITE_DATA_DIR=str(data), REUNITE_METRICS_DIR=str(data / "metrics"))
                proc = faults.worker(env, data / "worker.log", args.concurrency)
                world.procs.append(proc)
                hosts.append((f"host{i}", data / "metrics", proc))
            faults.say(f"{args.hosts} hosts up: {[h[0] for h in hosts]} on {cluster.url}")

            for run, kill in (("all hosts up", False), ("host0 SIGKILLed", True)):
                world.counter.reset()
                before = {name: host_outcomes(m) for name, m, _ in hosts}
                message_id = world.new_message(wave=2 if kill else 1)
                started = world.fan_out(message_id)
                at_kill = None
                if kill:
                    world.wait_delivered(math.ceil(args.devices * args.kill_at), 900, started)
                    hosts[0][2].kill_group()
                    at_kill = world.counter.update()
                    faults.say(f"{run}: host0 killed at {at_kill}/{args.devices} delivered")
                try:
                    done = world.wait_delivered(args.devices, args.timeout, started)
                except TimeoutError as exc:
                    faults.say(f"{run}: {exc}")
                    done = float("nan")
                world.settle()
                # The sink can have every push before the ledger does: a killed host's last
                # sends were answered but not recorded, and the reconciler re-queues them only
                # after the owner's grace. Wait for the ledger to account for every device.
                settled = wait_ledger(world, message_id, args.devices, args.ledger_timeout)
                counts = Counter(world.counter.counts)
                delivered = len(counts)
                lost = args.devices - delivered
                duplicated = sum(n - 1 for n in counts.values())
                outcomes = {name: host_outcomes(m) - before[name] for name, m, _ in hosts}
                spread = {name: n["ok"] for name, n in outcomes.items()}
                elapsed = done - started
                print(f"\n== {run}: {args.devices:,} devices, {args.hosts} hosts ==")
                print(
                    f"fan-out to last push {elapsed:.1f} s = {args.devices / elapsed:,.0f} pushes/s"
                )
                print(f"delivered {delivered:,}  lost {lost}  duplicated {duplicated}")
                for name, n in spread.items():
                    share = n / max(1, sum(spread.values()))
                    others = dict(outcomes[name] - Counter(ok=n))
                    print(f"  {name}: {n:>8,} pushes sent ({share:.0%}); other outcomes {others}")
                if at_kill is not None:
                    print(f"  host0 was killed at {at_kill:,} delivered (all hosts)")
                print(f"  ledger settled {settled:.1f} s after the last push" if settled >= 0
                      else f"  ledger NOT settled within {args.ledger_timeout:.0f} s")  # fmt: skip
                if settled < 0:
                    failures.append(f"{run}: ledger did not account for every device")
                world.evidence(message_id, fig := faults.Figures(run, args.devices, counts))
                for note in fig.notes:
                    print(f"  {note}")
                if lost:
                    failures.append(f"{run}: {lost} lost")
                bound = args.concurrency * (FLUSH_EVERY + (args.streams or 200))
                if kill and duplicated > bound:
                    failures.append(f"{run}: {duplicated} duplicated > {bound}")
            print(f"\nnode balance: {json.dumps(cluster.node_stats())}")
    finally:
        cluster.stop()
        broker.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n" + ("FAIL: " + "; ".join(failures) if failures else "ok"))
    return 1 if failures else 0


def wait_ledger(world, message_id: str, devices: int, timeout: float) -> float:
    """Seconds until the message's ledger has a final state (sent, dead, failed, ended or
    dead-lettered) for every device; -1 on timeout."""
    from channels import ledger
    from ops.platform.redis_client import get_redis

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        counts = ledger.live_counts(get_redis(), message_id).get(("apns", world.partner_id), {})
        final = sum(counts.get(k, 0) for k in ("sent", "dead", "failed", "dead_lettered"))
        if final >= devices:
            return time.monotonic() - start
        time.sleep(0.5)
    return -1.0


if __name__ == "__main__":
    raise SystemExit(main())
