"""APNs channel alone: ApnsChannel.send in one process against the nginx HTTP/2 sink.

    python benchmarks/apns_channel.py                 # 30,000 pushes, 4 x 300 streams
    python benchmarks/apns_channel.py --pushes 10000 --connections 2 --streams 100

No broker, database or ledger: batches of 1,000 sends under a concurrency cap, the way
channels/fanout.py's `_send_many` drives the channel. Prints pushes/s and this process's CPU
per push (what bounds a worker process). Needs nginx (apt-get install nginx-light).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def push(channel, delivery, n: int, concurrency: int) -> Counter[str]:
    """Send n pushes in batches of 1,000, at most `concurrency` in flight; count reasons."""
    from channels.base import Recipient

    sem = asyncio.Semaphore(concurrency)
    recipient = Recipient("b" * 64)

    async def one():
        async with sem:
            return await channel.send(recipient, delivery)

    reasons: Counter[str] = Counter()
    for start in range(0, n, 1000):
        outcomes = await asyncio.gather(*(one() for _ in range(min(1000, n - start))))
        reasons.update(o.reason for o in outcomes)
    return reasons


def measure(url: str, ca_file: Path, pushes: int, connections: int, streams: int):
    """Push through ApnsChannel to the sink at url; (wall s, CPU s of this process, reasons)."""
    from pydantic import SecretStr

    from channels.apns import ApnsChannel, ApnsSettings
    from ops.peers import keys
    from ops.platform.channel_settings import HttpTransportSettings
    from tests.peers.samples import sample_delivery

    key = keys.make_apns_key()
    settings = ApnsSettings(
        base_url=url,
        topic="cn.reunite.app",
        team_id=key.team_id,
        key_id=key.key_id,
        auth_key=SecretStr(key.private_pem),
        connections=connections,
        streams_per_connection=streams,
        transport=HttpTransportSettings(ca_bundle=ca_file),
    )
    channel = ApnsChannel(settings)
    delivery = sample_delivery(now=time.time())
    concurrency = connections * streams
    from channels.runtime import new_loop

    loop = new_loop()  # the loop the workers run channels on
    try:
        loop.run_until_complete(push(channel, delivery, 1000, concurrency))  # connect, warm
        wall, cpu = time.perf_counter(), time.process_time()
        reasons = loop.run_until_complete(push(channel, delivery, pushes, concurrency))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        loop.run_until_complete(channel.aclose())
    finally:
        loop.close()
    return wall, cpu, reasons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=30_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        print("nginx not found (apt-get install nginx-light)")
        return 1

    from benchmarks.fanout import nginx_sink
    from ops.peers._runtime import make_self_signed

    workdir = Path(tempfile.mkdtemp(prefix="ru-apns-"))
    tls = make_self_signed(workdir / "tls")
    with nginx_sink(workdir, tls) as url:
        wall, cpu, reasons = measure(url, tls.cert, args.pushes, args.connections, args.streams)
    print(
        f"{args.pushes:,} pushes in {wall:.2f}s = {args.pushes / wall:,.0f} pushes/s, "
        f"{cpu / args.pushes * 1e6:.0f} us CPU per push in this process "
        f"({args.connections} connections x {args.streams} streams); outcomes {dict(reasons)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
