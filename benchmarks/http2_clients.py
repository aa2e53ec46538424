"""HTTP/2 client candidates for APNs pushes, side by side on one nginx sink, in one process each
round: Reunite's pool (channels/http2.py, pycurl), curl_cffi's AsyncSession and pyreqwest.

    python benchmarks/http2_clients.py     # pip install curl_cffi pyreqwest first

The same 20,000 POSTs (APNs headers, a 340-byte body), 1,000 at a time with 1,200 in flight,
4 connections. Prints pushes/s and this process's CPU per push for each. The candidates are
not dependencies of Reunite: a missing one is skipped. pyreqwest is run with certificate
checks off, because its rustls refuses the sink's self-signed certificate (a CA used as a
leaf); that does not change its CPU per request once connected.
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
N = 20000
HDR = {
    "apns-push-type": "alert",
    "apns-priority": "10",
    "apns-topic": "cn.reunite.app",
    "authorization": "bearer " + "x" * 150,
    "content-type": "application/json",
    "apns-id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "apns-expiration": "1780000000",
    "apns-collapse-id": "case-x",
}
BODY = b'{"aps":{"alert":{"title":"x","body":"' + b"y" * 300 + b'"}}}'


async def drive(post, n):
    sem = asyncio.Semaphore(1200)

    async def one(i):
        async with sem:
            return await post("/3/device/" + "b" * 64)

    res = []
    for s in range(0, n, 1000):
        res += await asyncio.gather(*(one(i) for i in range(min(1000, n - s))))
    return res


async def measure(name, post):
    await drive(post, 1000)
    w, c = time.perf_counter(), time.process_time()
    res = await drive(post, N)
    w, c = time.perf_counter() - w, time.process_time() - c
    print(f"{name:12} {N / w:8,.0f}/s {c / N * 1e6:6.1f} us/push  statuses={set(res)}")


async def main(url, ca):
    from channels.http2 import Http2Pool
    from ops.platform.channel_settings import HttpTransportSettings

    transport = HttpTransportSettings(ca_bundle=ca)
    pool = Http2Pool(url, transport, connections=4, streams_per_connection=300)
    fields = [f"{k}: {v}".encode() for k, v in HDR.items()]

    async def post_pool(path):
        return (await pool.post(path, list(fields), BODY)).status

    await measure("pycurl pool", post_pool)
    try:
        from curl_cffi import requests as cr
        from curl_cffi.const import CurlHttpVersion
    except ImportError:
        print("curl_cffi not installed: skipped")
    else:
        session = cr.AsyncSession(verify=str(ca), http_version=CurlHttpVersion.V2TLS, max_clients=4)

        async def post_cffi(path):
            return (await session.post(url + path, headers=HDR, data=BODY)).status_code

        await measure("curl_cffi", post_cffi)
    try:
        from pyreqwest.client import ClientBuilder
    except ImportError:
        print("pyreqwest not installed: skipped")
    else:
        builder = ClientBuilder().danger_accept_invalid_certs(True).http2(True)
        client = builder.max_connections(4).build()

        async def post_rq(path):
            request = client.post(url + path).headers(HDR).body_bytes(BODY)
            async with request.build_streamed() as response:
                return response.status

        await measure("pyreqwest", post_rq)
    await measure("pycurl pool", post_pool)  # again: the first figure of a round runs cold


if __name__ == "__main__":
    from benchmarks.fanout import nginx_sink
    from ops.peers._runtime import make_self_signed

    workdir = Path(tempfile.mkdtemp(prefix="ru-clients-"))
    tls = make_self_signed(workdir / "tls")
    with nginx_sink(workdir, tls) as url:
        asyncio.run(main(url, tls.cert))
