"""APNs clients side by side on one nginx HTTP/2 sink: h2load, Reunite's channel, @parse/node-apn.

    python benchmarks/peers.py                     # 30,000 pushes each, 3 rounds
    python benchmarks/peers.py --pushes 10000 --rounds 1

Each client pushes the same number of requests with 4 connections to the same sink, one process
each, in rounds that alternate the order (the machine is shared: a ratio within a round is the
figure to quote, not a rate across runs). Prints pushes/s and CPU per push of the client's own
process for each, and Reunite's CPU per push as a ratio to node-apn's and to h2load's.

- h2load (nghttp2-client): the ceiling for any client; its CPU is its whole process's.
- Reunite: channels/apns.py's ApnsChannel.send in this process, the way the fan-out drives it
  (benchmarks/apns_channel.py); CPU is this process's during the pushes.
- @parse/node-apn 8.1 (the library Parse Server uses), installed with npm into a temporary
  directory; CPU is Node's process.cpuUsage() during the pushes. Skipped if npm is absent.
Needs nginx (apt-get install nginx-light) and h2load (apt-get install nghttp2-client).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NODE_APN = "@parse/node-apn@8.1.0"
HERE = Path(__file__).resolve().parent


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_h2load(url: str, pushes: int, connections: int, payload: Path) -> tuple[float, float]:
    """(pushes/s, CPU s) of h2load sending `pushes` POSTs over `connections` connections."""
    before = children_cpu()
    out = subprocess.run(
        [
            "h2load", "-n", str(pushes), "-c", str(connections), "-m", "100", "-t", "1",
            "-d", str(payload), "-H", "apns-topic: cn.reunite.app",
            "-H", "apns-push-type: alert", f"{url}/3/device/{'b' * 64}",
        ],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    cpu = children_cpu() - before
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    ok = re.search(r"status codes: (\d+) 2xx", out)
    if rate is None or ok is None or int(ok.group(1)) != pushes:
        raise RuntimeError(f"h2load did not finish cleanly: {out[-400:]}")
    return float(rate.group(1)), cpu


def install_node_apn(workdir: Path) -> Path | None:
    """@parse/node-apn in a temporary npm project; None (with a message) if npm is missing."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        print("npm/node not found: @parse/node-apn skipped")
        return None
    target = workdir / "node-apn"
    target.mkdir()
    npm = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(target)]
    subprocess.run([*npm, NODE_APN], check=True, timeout=600)
    return target


def run_node_apn(
    module_dir: Path, url: str, ca: Path, pushes: int, connections: int, workdir: Path
) -> tuple[float, float]:
    """(pushes/s, CPU s) of node-apn sending `pushes` notifications in batches of 1,000."""
    from ops.peers import keys

    key = keys.make_apns_key()
    host, port = url.removeprefix("https://").rsplit(":", 1)
    config = {
        "key_pem": key.private_pem, "key_id": key.key_id, "team_id": key.team_id,
        "host": host, "port": int(port), "ca_file": str(ca), "connections": connections,
        "topic": "cn.reunite.app", "title": "Missing child", "body": "x" * 300,
        "expiry": int(time.time()) + 86400, "collapse_id": "case-bench", "token": "b" * 64,
        "batch": 1000, "pushes": pushes,
    }  # fmt: skip
    path = workdir / "node-apn.json"
    path.write_text(json.dumps(config))
    out = subprocess.run(
        ["node", str(HERE / "node_apn.js"), str(module_dir), str(path)],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    if result["ok"] != pushes:
        raise RuntimeError(f"node-apn: {result['ok']} of {pushes} pushes answered 200")
    return pushes / result["wall_s"], result["cpu_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=30_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=300, help="Reunite's streams per connection")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool, package in (("nginx", "nginx-light"), ("h2load", "nghttp2-client")):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install {package})")
            return 1

    from benchmarks.apns_channel import measure
    from benchmarks.fanout import nginx_sink
    from ops.peers._runtime import make_self_signed

    workdir = Path(tempfile.mkdtemp(prefix="ru-peers-"))
    tls = make_self_signed(workdir / "tls")
    payload = workdir / "payload.json"
    payload.write_text(
        json.dumps({"aps": {"alert": {"title": "Missing child", "body": "x" * 300}}})
    )
    node_dir = install_node_apn(workdir)
    n = args.pushes

    def reunite() -> tuple[float, float]:
        wall, cpu, reasons = measure(url, tls.cert, n, args.connections, args.streams)
        if reasons.get("ok") != n:
            raise RuntimeError(f"Reunite: outcomes {dict(reasons)}")
        return n / wall, cpu

    clients = {
        "h2load": lambda: run_h2load(url, n, args.connections, payload),
        "Reunite ApnsChannel": reunite,
    }
    if node_dir is not None:
        clients["@parse/node-apn 8.1"] = lambda: run_node_apn(
            node_dir, url, tls.cert, n, args.connections, workdir
        )
    names = list(clients)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {"node-apn": [], "h2load": []}
    with nginx_sink(workdir, tls) as url:
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            cpu_us: dict[str, float] = {}
            for name in order:
                rate, cpu = clients[name]()
                figures[name].append((rate, cpu))
                cpu_us[name] = cpu / n * 1e6
                line = f"{name:22} {rate:>9,.0f} pushes/s  {cpu_us[name]:6.1f} us CPU/push"
                print(f"round {r + 1}  {line}")
            reunite_us = cpu_us["Reunite ApnsChannel"]
            ratios["h2load"].append(reunite_us / cpu_us["h2load"])
            if node_dir is not None:
                ratios["node-apn"].append(reunite_us / cpu_us["@parse/node-apn 8.1"])
    print(f"\n{n:,} pushes each, {args.connections} connections, median of {args.rounds} rounds:")
    for name in names:
        rate = statistics.median(f[0] for f in figures[name])
        cpu = statistics.median(f[1] for f in figures[name]) / n * 1e6
        print(f"  {name:22} {rate:>9,.0f} pushes/s  {cpu:6.1f} us CPU/push")
    for anchor, values in ratios.items():
        if values:
            print(
                f"  Reunite CPU per push / {anchor}: median {statistics.median(values):.2f}x "
                f"(rounds: {', '.join(f'{v:.2f}' for v in values)})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
